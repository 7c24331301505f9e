"""Reads on streaming replicas (`DATABASE_REPLICA_URLS`), with read-your-writes, as GitLab's
database load balancing does it.

**Where a read goes.** A read outside a write's unit of work (`ReadSession`) goes to a replica
that is up, no further behind the primary than `CONDUIT_DB_REPLICA_MAX_LAG_SECONDS`, and known
to have replayed the primary's WAL up to the read's *position*; else to the primary. Writes, and
the reads of a write's unit of work (`SessionReader`), run on the primary, as do jobs.

**Positions.** Once a request that may write has committed, the primary's WAL insert position
is recorded for its user, and for any user whose credentials it ended (`follow_writes_of`), in
the shared store with a TTL (in this process's memory without one). That user's requests, on
any process, take it as their position (`follow_writes`): they read what the user wrote. A
cache fill takes the position at which its versions were set (`conduit.cache`), so that no
entry is built from a replica that has not replayed the write that made it current. Anonymous
reads have none: they may be as stale as the lag bound.

**Not found is the primary's to say.** A read that finds nothing on a replica is asked again of
the primary: a row created a moment ago by someone else is not a stale 404, and a token issued
a moment ago signs in.

**Failures.** Each process checks every replica every `CHECK_INTERVAL_SECONDS`: how far it has
replayed, and how long ago the primary was first seen past that (its lag). A replica that
refuses, times out (`CONDUIT_DB_REPLICA_TIMEOUT_SECONDS`, on connecting and on each read) or
fails a check serves nothing and is not checked again for a while, twice as long after each
failure in a row; the read that met the failure goes to the next replica or the primary. With
every replica down, reads go to the primary: a replica is never the cause of a 5xx.
"""

import asyncio
import contextlib
import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

import asyncpg
from cachetools import TTLCache
from fastapi import Request
from sqlalchemy import Dialect
from sqlalchemy.engine import make_url

from conduit import clients, kv, metrics, request_state
from conduit.config import DatabaseSettings
from conduit.database.engine import asyncpg_pool
from conduit.database.outage import UNAVAILABLE
from conduit.database.read_path import AsyncpgPoolReader, Read, Reader

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A position past anything a replica has replayed: read from the primary. Where a write's
# position could not be had (the primary did not answer after the commit), or a user's could
# not be looked up (the shared store is down).
UNKNOWN = 1 << 64

CHECK_INTERVAL_SECONDS = 0.5
# A replica that failed is left alone for this long, doubled per failure in a row up to the
# cap, with jitter so that the processes do not all come back to it at once.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0

# Where a write's position is taken: the insert position, past every commit that has returned
# (whatever `synchronous_commit` says). On an idle primary it may stay a page header past what
# any replica will replay, so a replica's lag is measured against the flushed position: what
# it can have received.
_PRIMARY_POSITION = "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint"
_PRIMARY_FLUSHED = "SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint"
# NULL on a server that is not in recovery: not a replica (a promoted one, say).
_REPLAYED = "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint"

READS_ON_PRIMARY = metrics.DB_READS.labels("primary")
_FALLBACKS = {
    reason: metrics.DB_REPLICA_FALLBACKS.labels(reason)
    for reason in ("behind", "unavailable", "failed", "not_found")
}
# What a check meets besides an unavailable server: an error from the server (DATABASE_URL
# naming a server in recovery, say) or from the driver. The checks go on whatever they meet
# there: a check task that died would leave every replica as it last saw it.
_CHECK_FAILED = (*UNAVAILABLE, asyncpg.PostgresError, asyncpg.InterfaceError)
# On a hot standby, a read that conflicts with the replay of the primary's changes (a vacuum
# removing rows it could see) is cancelled: the primary has no such conflict.
_REPLAY_CONFLICT = asyncpg.exceptions.SerializationError

# The position the reads of a cache fill must have: the task rebuilding an entry sets it.
_fill_position: ContextVar[int] = ContextVar("conduit_fill_position", default=0)


@contextlib.contextmanager
def reading_after(position: int) -> Iterator[None]:
    """Reads in the block run where the primary's WAL has been replayed up to `position`."""
    token = _fill_position.set(position)
    try:
        yield
    finally:
        _fill_position.reset(token)


def position_of(version: str) -> int:
    """The WAL position a cache version was set at (`conduit.cache.entries`); 0 for none."""
    _, _, position = version.partition("@")
    return int(position, 16) if position else 0


class Positions(Protocol):
    async def of(self, user_id: int) -> int:
        """The position of the user's last recorded write; 0 for none, `UNKNOWN` when it
        cannot be told."""

    async def record(self, user_ids: Iterable[int], position: int) -> None: ...


class SharedPositions:
    """Positions in Redis or Upstash, at `<prefix>:db:written:<user id>`: a sorted set of one
    member whose score only rises (`ZADD GT`), so that of two writes committed together the
    later position stays, whatever order they are recorded in."""

    def __init__(self, store: kv.Redis | kv.Upstash, *, prefix: str, ttl_seconds: int) -> None:
        self._store = store
        self._prefix = f"{prefix}:db:written:"
        self._ttl = ttl_seconds

    async def of(self, user_id: int) -> int:
        if not self._store.outage.available():
            return UNKNOWN
        try:
            [score] = await self._store.run([("ZSCORE", f"{self._prefix}{user_id}", "w")])
        except kv.Unavailable as error:
            self._store.outage.failed(error)
            return UNKNOWN
        return 0 if score is None else int(float(cast("bytes | str", score)))

    async def record(self, user_ids: Iterable[int], position: int) -> None:
        commands: list[kv.Command] = []
        for user_id in user_ids:
            key = f"{self._prefix}{user_id}"
            commands += [("ZADD", key, "GT", position, "w"), ("EXPIRE", key, self._ttl)]
        try:
            await self._store.run(commands)
        except kv.Unavailable as error:
            # Read while the store is down, a position is UNKNOWN: the primary answers.
            self._store.outage.failed(error)


class MemoryPositions:
    """Positions in this process, for one process with no shared store."""

    def __init__(self, *, ttl_seconds: int) -> None:
        self._positions: TTLCache[int, int] = TTLCache(maxsize=100_000, ttl=ttl_seconds)

    async def of(self, user_id: int) -> int:
        return self._positions.get(user_id, 0)

    async def record(self, user_ids: Iterable[int], position: int) -> None:
        for user_id in user_ids:
            self._positions[user_id] = max(position, self._positions.get(user_id, 0))


@dataclass(eq=False, slots=True)
class Replica:
    """A replica as this process last saw it."""

    name: str
    reader: AsyncpgPoolReader
    replayed: int = -1
    lag_seconds: float = math.inf
    # While in the future (monotonic), the replica serves nothing and is not checked.
    down_until: float = 0.0
    failures: int = 0

    def serves(self, position: int, now: float, max_lag: float) -> bool:
        return self.down_until <= now and self.lag_seconds <= max_lag and self.replayed >= position

    def failed(self, now: float) -> bool:
        """Left alone for a while, unless it is already: the reads that were in flight when it
        failed are one failure, not one each. Whether it was serving until now."""
        if self.down_until > now:
            return False
        self.failures += 1
        cap = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (self.failures - 1))
        self.down_until = now + cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 (jitter)
        self.lag_seconds = math.inf
        metrics.DB_REPLICA_LAG.labels(self.name).set(math.inf)
        return True


class _PrimaryHistory:
    """The primary's position as the checks saw it over the last while: a replica is as far
    behind as it has been since the primary was first seen past what it has replayed."""

    def __init__(self, seconds: float) -> None:
        self._samples: deque[tuple[float, int]] = deque(
            maxlen=math.ceil(seconds / CHECK_INTERVAL_SECONDS) + 2
        )

    def add(self, now: float, position: int) -> None:
        self._samples.append((now, position))

    def lag(self, replayed: int, now: float) -> float:
        for seen, position in self._samples:
            if position > replayed:
                return now - seen
        return 0.0


class Replicas:
    """The process's replicas and the primary they stand in for."""

    def __init__(
        self,
        primary: AsyncpgPoolReader,
        replicas: list[Replica],
        positions: Positions,
        settings: DatabaseSettings,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.positions = positions
        self._max_lag = settings.replica_max_lag_seconds
        self._history = _PrimaryHistory(2 * self._max_lag)
        self._turn = itertools.count()
        self._reads = {replica.name: metrics.DB_READS.labels(replica.name) for replica in replicas}

    def reader(self, state: request_state.RequestState) -> "RoutedReader":
        return RoutedReader(self, state)

    def states(self) -> dict[str, str]:
        """For `/health/ready`: each replica ok, lagging (further behind than the bound), or
        down (failed, and not checked well since; or not checked yet)."""
        return {
            replica.name: (
                "down"
                if replica.failures or replica.replayed < 0
                else "ok"
                if replica.lag_seconds <= self._max_lag
                else "lagging"
            )
            for replica in self.replicas
        }

    def _choose(self, position: int, tried: list[Replica]) -> Replica | None:
        now = time.monotonic()
        serving = [
            replica
            for replica in self.replicas
            if replica not in tried and replica.serves(position, now, self._max_lag)
        ]
        if not serving:
            return None
        return serving[next(self._turn) % len(serving)]

    async def scalar(self, read: Read[T], position: int, params: dict[str, object]) -> T | None:
        tried: list[Replica] = []
        while (replica := self._choose(position, tried)) is not None:
            tried.append(replica)
            try:
                value = await replica.reader.scalar(read, **params)
            except UNAVAILABLE as error:
                self._failed(replica, type(error).__name__)
                continue
            except _REPLAY_CONFLICT:
                _FALLBACKS["failed"].inc()
                break
            if value is None:
                _FALLBACKS["not_found"].inc()
                break
            self._reads[replica.name].inc()
            return value
        if not tried:
            _FALLBACKS[self._fallback_reason()].inc()
        READS_ON_PRIMARY.inc()
        return await self.primary.scalar(read, **params)

    def _fallback_reason(self) -> str:
        """Why no replica was tried: none had replayed the read's position, or none serves."""
        now = time.monotonic()
        if any(replica.serves(0, now, self._max_lag) for replica in self.replicas):
            return "behind"
        return "unavailable"

    def _failed(self, replica: Replica, error: str) -> None:
        _FALLBACKS["failed"].inc()
        if not replica.failed(time.monotonic()):
            return
        logger.warning(
            "replica_unavailable",
            extra={
                "replica": replica.name,
                "error": error,
                "retry_in_seconds": round(replica.down_until - time.monotonic(), 1),
            },
        )

    async def position(self) -> int:
        """The primary's WAL insert position now: past every commit that has returned.
        `UNKNOWN` when the primary does not answer."""
        return await self._primary(_PRIMARY_POSITION)

    async def _primary(self, sql: str) -> int:
        try:
            return cast("int", await self.primary.fetchval(sql))
        except _CHECK_FAILED:
            return UNKNOWN

    async def check(self) -> None:
        """How far the primary and each replica that is not left alone have got."""
        now = time.monotonic()
        due = [replica for replica in self.replicas if replica.down_until <= now]
        primary, replayed = await asyncio.gather(
            self._primary(_PRIMARY_FLUSHED),
            asyncio.gather(*(self._replayed(replica) for replica in due)),
        )
        now = time.monotonic()
        if primary != UNKNOWN:
            self._history.add(now, primary)
        for replica, position in zip(due, replayed, strict=True):
            if position is None:
                continue
            replica.replayed, replica.failures = position, 0
            replica.lag_seconds = self._history.lag(position, now)
            metrics.DB_REPLICA_LAG.labels(replica.name).set(replica.lag_seconds)

    async def _replayed(self, replica: Replica) -> int | None:
        try:
            position = await replica.reader.fetchval(_REPLAYED)
        except _CHECK_FAILED as error:
            self._failed(replica, type(error).__name__)
            return None
        if position is None:
            self._failed(replica, "not in recovery: a primary, not a replica")
            return None
        return cast("int", position)

    async def watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)


class RoutedReader:
    """A request's reads: on a replica that has replayed the request's position (the caller's
    last write's, `follow_writes`), else on the primary."""

    __slots__ = ("_replicas", "_state")

    def __init__(self, replicas: Replicas, state: request_state.RequestState) -> None:
        self._replicas = replicas
        self._state = state

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        position = max(self._state.reads_after, _fill_position.get())
        return await self._replicas.scalar(read, position, params)


async def follow_writes(request: Request, user_id: int) -> bool:
    """The request's reads see what `user_id` has written, on any process: whether the user
    wrote lately enough for that to matter."""
    replicas = clients.of(request).replicas
    if replicas is None:
        return False
    position = await replicas.positions.of(user_id)
    request_state.of(request.scope).reads_after = position
    return position > 0


@contextlib.asynccontextmanager
async def connect(
    settings: DatabaseSettings,
    primary: Reader,
    dialect: Dialect,
    store: kv.Store,
    *,
    prefix: str,
) -> AsyncIterator[Replicas | None]:
    """The replicas in `DATABASE_REPLICA_URLS`, checked in the background while the process
    runs; None without any, and on SQLite. Nothing is awaited from them here: until its
    first check, a replica serves nothing."""
    dsns = settings.replica_dsns
    if not dsns or not isinstance(primary, AsyncpgPoolReader):
        yield None
        return
    # A user's position is needed only while a replica within the lag bound may not have
    # replayed it: the bound, a check's interval on either side, and a margin.
    ttl = math.ceil(settings.replica_max_lag_seconds + 2 * CHECK_INTERVAL_SECONDS) + 5
    positions: Positions = (
        MemoryPositions(ttl_seconds=ttl)
        if isinstance(store, kv.Memory)
        else SharedPositions(store, prefix=prefix, ttl_seconds=ttl)
    )
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            Replica(
                name=_name(dsn),
                reader=await stack.enter_async_context(
                    asyncpg_pool(
                        dsn,
                        settings,
                        dialect,
                        connect_timeout=settings.replica_timeout_seconds,
                        read_timeout=settings.replica_timeout_seconds,
                    )
                ),
            )
            for dsn in dsns
        ]
        routing = Replicas(primary, replicas, positions, settings)
        watching = asyncio.create_task(routing.watch(), name="conduit-replica-checks")
        stack.push_async_callback(_stop, watching)
        yield routing


def _name(dsn: str) -> str:
    """host:port/database, without credentials."""
    url = make_url(dsn)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
