"""The read cache: shared documents, exact invalidation, one rebuild per miss.

**Exact.** An entry records the versions of the names it depends on (`conduit.cache.versions`)
as they were *before* its document was read from the database; it is served only while they
are all still current. A write gives its names new versions after it commits, before its
response is sent. A reader that missed, read the database before the write committed and
stores its entry after the write's new versions were set stores it under the old versions:
it is never served. A plain delete of the entry would let that reader put the old state back.

**Nothing for what does not exist.** A name that has no version yet (`article:<slug>`, say) gets
one only when a document that depends on it is stored, in the same round trip (`SET NX`): a
read of something that does not exist (a 404) writes nothing. A write that committed after the
document was read and gave the name a version first leaves the entry recorded under a version
that never became current; one that gives it a new version afterwards makes the entry
unreachable, as above: either way it is never served.

**Bounded.** A document is stored only if it is worth keeping (a page with no articles is not:
`Entry.keep`), is at most `max_entry_bytes`, and the caller has cache fills left (a rate-limit
policy, `cache_fills`): whatever a client asks for, what it adds to the store is at most its
fills per window times the largest entry (docs/caching.md, "Bounds").

**One rebuild per miss.** Concurrent misses of one entry under the same versions in a process
wait for one rebuild; other processes rebuild at most once each.

**Outages.** While the store fails, reads go to the database and writes succeed. A write whose
invalidation could not be delivered leaves entries that must not be served; so does any
invalidation that another process could not deliver while this one could not look. After any
failure the process bypasses the cache until it has given the `epoch`, a name every entry
depends on, a new version: every entry from before the outage is then dead, everywhere.
"""

import asyncio
import contextlib
import hashlib
import logging
from asyncio import Future
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from fastapi import Response
from sqlalchemy import Dialect

from conduit import kv, metrics
from conduit.cache import versions
from conduit.cache.entries import Caller, Document, Entries, MemoryEntries, SharedEntries
from conduit.cache.http import respond
from conduit.config import CacheSettings
from conduit.database import Read
from conduit.database.replicas import position_of, reading_after

logger = logging.getLogger(__name__)

HITS = metrics.CACHE_LOOKUPS.labels("hit")
MISSES = metrics.CACHE_LOOKUPS.labels("miss")
BYPASSED = metrics.CACHE_LOOKUPS.labels("bypass")

_LANDED_SECONDS = 1.0


def _always(_: bytes) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Entry:
    """A cacheable document: built by `read`, stored under `key`, depending on `names`, if
    `keep` says it is worth storing."""

    read: Read[str]
    key: str
    names: tuple[str, ...]
    keep: Callable[[bytes], bool] = _always


# Builds an entry's document from the database, for the viewer with this id, or as everyone
# but a signed-in viewer sees it (None).
Build = Callable[[int | None], Awaitable[str]]
# Turns the shared document into the signed-in viewer's (`favorited`, `following`).
Personalise = Callable[[Document, int], Awaitable[Document]]
# The primary's WAL position now (`conduit.database.replicas.Replicas.position`).
Position = Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class CachedRead:
    """A read endpoint's document through the cache: what it is stored as, how it is built, and,
    for a document shared by every viewer, how a signed-in viewer's copy is made (without,
    the entry is the caller's own)."""

    entry: Entry
    build: Build
    personalise: Personalise | None = None


def document_of(body: bytes) -> Document:
    return Document(body, f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"')


class Cache(Protocol):
    """What every cache offers, on (`VersionedCache`) or off (`Uncached`): a read endpoint's
    response, the invalidation of what a committed write changed, and its closing."""

    async def respond(self, caller: Caller, read: CachedRead) -> Response:
        """The read's document, for the caller, who is counted against its rate limit."""

    async def invalidate(self, names: Collection[str]) -> None:
        """Nothing depending on `names` served as it was: called once the write that changed
        them has committed."""

    async def close(self) -> None: ...


# An entry's key and the versions of its names as its reader found them (None: none yet).
_FlightKey = tuple[str, tuple[str | None, ...]]


class VersionedCache:
    """The cache on (`CONDUIT_CACHE_ENABLED`), in memory or in the shared store: entries
    served while the versions of their names are current (the module docstring)."""

    def __init__(
        self,
        entries: Entries,
        outage: kv.Outage,
        dialect: Dialect,
        *,
        max_entry_bytes: int,
        position: Position | None = None,
    ) -> None:
        self._entries = entries
        self._outage = outage
        self._dialect = dialect
        self._position = position
        self._max_entry_bytes = max_entry_bytes
        self._flights: dict[_FlightKey, Future[Document]] = {}
        # Set while entries from before a failure may be stale; cleared by a new epoch.
        self._distrust: asyncio.Task[None] | None = None

    async def respond(self, caller: Caller, read: CachedRead) -> Response:
        viewer_id = caller.viewer_id
        if read.personalise is None:
            document = await self.read(caller, read.entry, lambda: read.build(viewer_id))
        else:
            document = await self.read(caller, read.entry, lambda: read.build(None))
            if viewer_id is not None:
                document = await read.personalise(document, viewer_id)
        return respond(caller.request, document)

    async def read(
        self, caller: Caller, entry: Entry, build: Callable[[], Awaitable[str]]
    ) -> Document:
        """The entry's document, from the cache while it is current, else from `build`; the
        caller is counted against its rate limit in the same round trip as the lookup."""
        if self._distrust is not None:
            BYPASSED.inc()
            await caller.count()
            return document_of((await build()).encode())
        names = (versions.EPOCH, *entry.names)
        key = f"{entry.read.compiled(self._dialect).fingerprint}:{entry.key}"
        try:
            found = await self._entries.find(caller, names, key)
            if found is None:
                # Not asked: the caller's decision met the store failing, or it is down.
                BYPASSED.inc()
                self._distrusting()
                return document_of((await build()).encode())
            current = found.versions
            if found.entry is not None and found.entry[0] == current:
                HITS.inc()
                return found.entry[1]
        except kv.Unavailable as error:
            BYPASSED.inc()
            self._failed(error)
            return document_of((await build()).encode())
        MISSES.inc()
        flight_key = (key, current)
        flight = self._flights.get(flight_key)
        if flight is None:
            store = partial(self._store, caller, entry, key, dict(zip(names, current, strict=True)))
            # Built where the writes that set these versions have been replayed: a replica
            # behind them would store the state before them under the versions after them.
            position = max((position_of(version) for version in current if version), default=0)
            flight = asyncio.ensure_future(self._rebuild(build, store, position))
            self._flights[flight_key] = flight
            flight.add_done_callback(partial(self._landed, flight_key))
        # A waiter that gives up (its client went away) leaves the rebuild to the others.
        return await asyncio.shield(flight)

    def _landed(self, flight_key: _FlightKey, flight: Future[Document]) -> None:
        """A rebuild stays joinable for a moment after it lands: a reader that looked before
        its entry was stored, under the same versions, takes its document rather than
        rebuilding (it is the document the entry holds). A failed one is forgotten at once;
        its waiters raise its error (a 404, say)."""
        if flight.cancelled() or flight.exception() is not None:
            del self._flights[flight_key]
        else:
            loop = asyncio.get_running_loop()
            loop.call_later(_LANDED_SECONDS, self._flights.pop, flight_key, None)

    async def _rebuild(
        self,
        build: Callable[[], Awaitable[str]],
        store: Callable[[Document], Awaitable[None]],
        position: int,
    ) -> Document:
        with reading_after(position):
            document = document_of((await build()).encode())
        try:
            await store(document)
        except kv.Unavailable as error:
            self._failed(error)
        return document

    async def _store(
        self,
        caller: Caller,
        entry: Entry,
        key: str,
        found: dict[str, str | None],
        document: Document,
    ) -> None:
        """Store the document built after the versions `found` were read, if it may be (the
        module docstring)."""
        if (
            len(document.body) <= self._max_entry_bytes
            and entry.keep(document.body)
            and await caller.may_fill()
        ):
            await self._entries.put(key, found, document)

    async def invalidate(self, names: Collection[str]) -> None:
        """New versions for `names`, after the write that changed them has committed."""
        if not self._outage.available():
            self._distrusting()
            return
        try:
            await self._entries.bump(sorted(names), await self._written())
        except kv.Unavailable as error:
            self._failed(error)
        else:
            self._outage.recovered()

    async def _written(self) -> int:
        """The primary's position now, past the writes that a bump follows: 0 without
        replicas, where every read sees every commit."""
        return 0 if self._position is None else await self._position()

    def _failed(self, error: kv.Unavailable) -> None:
        self._outage.failed(error)
        self._distrusting()

    def _distrusting(self) -> None:
        if self._distrust is None:
            logger.warning("cache_bypassed", extra={"reason": "shared store unavailable"})
            self._distrust = asyncio.ensure_future(self._new_epoch())

    async def _new_epoch(self) -> None:
        """Retried until the store answers: every entry from before the failure dies."""
        while True:
            await asyncio.sleep(kv.RETRY_AFTER_FAILURE_SECONDS)
            if not self._outage.available():
                continue
            try:
                await self._entries.bump([versions.EPOCH], await self._written())
            except kv.Unavailable as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                self._distrust = None
                logger.info("cache_restored", extra={"detail": "new epoch"})
                return

    async def close(self) -> None:
        if self._distrust is not None:
            self._distrust.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._distrust


class Uncached:
    """`CONDUIT_CACHE_ENABLED=false`: every document is built for its viewer in one statement;
    nothing to invalidate."""

    async def respond(self, caller: Caller, read: CachedRead) -> Response:
        await caller.count()
        document = document_of((await read.build(caller.viewer_id)).encode())
        return respond(caller.request, document)

    async def invalidate(self, names: Collection[str]) -> None:
        del names

    async def close(self) -> None:
        pass


def create(
    settings: CacheSettings,
    store: kv.Store,
    *,
    prefix: str,
    dialect: Dialect,
    position: Position | None = None,
) -> Cache:
    if not settings.enabled:
        return Uncached()
    entries: Entries
    if isinstance(store, kv.Memory):
        entries = MemoryEntries(max_bytes=settings.memory_bytes, ttl_seconds=settings.ttl_seconds)
    else:
        entries = SharedEntries(store, prefix=prefix, ttl_seconds=settings.ttl_seconds)
    return VersionedCache(
        entries,
        store.outage,
        dialect,
        max_entry_bytes=settings.max_entry_bytes,
        position=position,
    )


@contextlib.asynccontextmanager
async def connect(
    settings: CacheSettings,
    store: kv.Store,
    *,
    prefix: str,
    dialect: Dialect,
    position: Position | None = None,
) -> AsyncIterator[Cache]:
    """The process's cache, in `store`; closed with the app. With replicas, `position` is the
    primary's WAL position: every version records where it was set (`conduit.cache.entries`)."""
    cache = create(settings, store, prefix=prefix, dialect=dialect, position=position)
    try:
        yield cache
    finally:
        await cache.close()
