"""Where entries and versions live: the shared store (Redis or Upstash), or this process's
memory for the embedded default.

An entry is the document's bytes with the versions it was built under and its ETag. In a
shared store both are plain strings: versions at `<prefix>:cache:v:<name>`, entries at
`<prefix>:cache:<format>:<fingerprint>:<key>` as `<version>,<version>...\\n<etag>\\n<document>`.
A lookup is one MGET of the versions and the entry, sent in the round trip of the caller's
rate-limit decision when there is one. With replicas, a version a write set ends with `@` and
the primary's WAL position after the write, in hex: an entry is built where that has been
replayed (`conduit.database.replicas`).
"""

import itertools
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from cachetools import TTLCache
from fastapi import Request

from conduit import kv

# The layout of an entry; changed with it, so that no process reads another layout.
FORMAT = "1"
# A version outlives the entries recorded under it; when it expires or is evicted anyway, the
# next reader creates a new one and those entries are never served again.
VERSION_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Document:
    """A response body and its strong ETag (the quoted validator)."""

    body: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class Found:
    """What a lookup found: the current version of each name (None where there is none yet)
    and the entry, if there is one, with the versions it was built under."""

    versions: tuple[str | None, ...]
    entry: tuple[tuple[str, ...], Document] | None


class Caller(Protocol):
    """Who reads (`conduit.auth.dependencies.Caller`), not yet counted against its rate limit:
    the decision carries the lookup in its round trip when it is made in the shared store."""

    @property
    def request(self) -> Request: ...

    @property
    def viewer_id(self) -> int | None: ...

    async def count(self, alongside: Sequence[kv.Command] = ()) -> list[object] | None: ...

    async def may_fill(self) -> bool:
        """Whether the caller may store one more entry (its budget of cache fills)."""


class Entries(Protocol):
    async def find(self, caller: Caller, names: Sequence[str], key: str) -> Found | None:
        """Count the caller and look the entry up; None when the store could not be asked."""

    async def put(self, key: str, found: Mapping[str, str | None], document: Document) -> None:
        """Store the document under the versions found before it was built. A name found with
        none gets one now, unless another reader or a write gave it one first: the entry is
        then recorded under a version that is not current, and never served."""

    async def bump(self, names: Sequence[str], position: int) -> None:
        """Give every name a new version, set at the primary's WAL `position`."""


def _text(reply: object) -> str:
    """A reply as text: redis-py answers bytes, upstash-redis text."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class SharedEntries:
    """Entries in Redis or Upstash; every call may raise `kv.Unavailable`."""

    def __init__(self, store: kv.Redis | kv.Upstash, *, prefix: str, ttl_seconds: int) -> None:
        self._store = store
        self._versions = f"{prefix}:cache:v:"
        self._entries = f"{prefix}:cache:{FORMAT}:"
        self._ttl = ttl_seconds

    async def find(self, caller: Caller, names: Sequence[str], key: str) -> Found | None:
        lookup = ("MGET", *(self._versions + name for name in names), self._entries + key)
        replies = await caller.count((lookup,))
        if replies is None:
            if not self._store.outage.available():
                return None
            replies = await self._store.run((lookup,))
        *versions, entry = cast("list[bytes | str | None]", replies[0])
        return Found(
            tuple(None if version is None else _text(version) for version in versions),
            None if entry is None else _parse(entry),
        )

    async def put(self, key: str, found: Mapping[str, str | None], document: Document) -> None:
        versions = {name: version or _new_version() for name, version in found.items()}
        creates = [
            ("SET", self._versions + name, versions[name], "EX", VERSION_TTL_SECONDS, "NX")
            for name, version in found.items()
            if version is None
        ]
        value = f"{','.join(versions.values())}\n{document.etag}\n".encode() + document.body
        await self._store.run([*creates, ("SET", self._entries + key, value, "EX", self._ttl)])

    async def bump(self, names: Sequence[str], position: int) -> None:
        version = _at(_new_version(), position)
        await self._store.run(
            [("SET", self._versions + name, version, "EX", VERSION_TTL_SECONDS) for name in names]
        )


def _parse(value: object) -> tuple[tuple[str, ...], Document]:
    raw = value if isinstance(value, bytes) else str(value).encode()
    versions, etag, body = raw.split(b"\n", 2)
    return tuple(versions.decode().split(",")), Document(body, etag.decode())


def _new_version() -> str:
    return secrets.token_hex(8)


def _at(version: str, position: int) -> str:
    """The version, with the WAL position it was set at when there are replicas to read from
    (`conduit.database.replicas.position_of`)."""
    return f"{version}@{position:x}" if position else version


class MemoryEntries:
    """Entries in this process, for the embedded default: one process, so nothing to share.
    The documents kept are bounded in bytes, the least recently used going first. Versions
    count up and never repeat, so an evicted version is safely replaced by a new one."""

    def __init__(self, *, max_bytes: int, ttl_seconds: int) -> None:
        self._entries: TTLCache[str, tuple[tuple[str, ...], Document]] = TTLCache(
            maxsize=max_bytes, ttl=ttl_seconds, getsizeof=_size
        )
        self._versions: TTLCache[str, str] = TTLCache(
            maxsize=_MEMORY_VERSIONS, ttl=VERSION_TTL_SECONDS
        )
        self._next = itertools.count(1)

    async def find(self, caller: Caller, names: Sequence[str], key: str) -> Found:
        await caller.count()
        return Found(tuple(self._versions.get(name) for name in names), self._entries.get(key))

    async def put(self, key: str, found: Mapping[str, str | None], document: Document) -> None:
        versions = {name: version or str(next(self._next)) for name, version in found.items()}
        for name, version in found.items():
            if version is None:
                self._versions.setdefault(name, versions[name])
        entry = (tuple(versions.values()), document)
        if _size(entry) <= self._entries.maxsize:
            self._entries[key] = entry

    async def bump(self, names: Sequence[str], position: int) -> None:
        version = _at(str(next(self._next)), position)
        for name in names:
            self._versions[name] = version


# Versions a process keeps in memory; a few dozen bytes each.
_MEMORY_VERSIONS = 100_000
# What an entry costs besides its document: its key, its versions, the cache's bookkeeping.
_ENTRY_OVERHEAD_BYTES = 512


def _size(entry: tuple[tuple[str, ...], Document]) -> int:
    return len(entry[1].body) + _ENTRY_OVERHEAD_BYTES
