"""The faults: PostgreSQL restarted, Redis restarted, a table locked, the pools exhausted; each
with the load it runs under."""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from enum import StrEnum

import asyncpg

from benchmarks.faults.load import Shape
from benchmarks.faults.result import Result
from benchmarks.faults.run import Fault, run
from benchmarks.setup import SCRATCH
from benchmarks.setup.postgres import Cluster, StopMode
from benchmarks.setup.redis_server import private_redis


class Scenario(StrEnum):
    DB_RESTART = "db-restart"
    REDIS_RESTART = "redis-restart"
    SLOW_DB = "slow-db"
    POOL_EXHAUSTED = "pool-exhausted"


@contextlib.asynccontextmanager
async def _down(stop: Callable[[], None], start: Callable[[], None]) -> AsyncIterator[None]:
    await asyncio.to_thread(stop)
    try:
        yield
    finally:
        await asyncio.to_thread(start)


def stopped(cluster: Cluster, mode: StopMode) -> Fault:
    return _down(functools.partial(cluster.stop, mode), cluster.start)


@contextlib.asynccontextmanager
async def _articles_locked(url: str) -> AsyncIterator[None]:
    """Every statement on the articles table, SELECTs included, waits for this transaction."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


def _db_restart(cluster: Cluster, workers: int, outage: float, mode: StopMode) -> Result:
    shape = Shape(
        f"PostgreSQL stopped (-m {mode}), down {outage:g} s, started",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=outage,
        after_seconds=8,
        # Every read reaches the database: from the cache some would not see the outage.
        env={"CONDUIT_CACHE_ENABLED": "false"},
    )
    url = cluster.create_database("restart")
    fault = stopped(cluster, mode)
    return run(Scenario.DB_RESTART, shape, fault, url=url, workers=workers, logs=SCRATCH)


def _redis_restart(cluster: Cluster, workers: int, outage: float) -> Result:
    shape = Shape(
        f"Redis (rate limits and read cache) stopped, down {outage:g} s, started",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=outage,
        after_seconds=8,
    )
    url = cluster.create_database("redis")
    with private_redis() as server:
        return run(
            Scenario.REDIS_RESTART,
            shape,
            _down(server.stop, server.start),
            url=url,
            workers=workers,
            logs=SCRATCH,
            redis_url=server.url,
        )


def _slow_db(cluster: Cluster, workers: int) -> Result:
    shape = Shape(
        "the articles table locked (ACCESS EXCLUSIVE) by another connection",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=10,
        after_seconds=6,
        env={"CONDUIT_CACHE_ENABLED": "false"},
    )
    url = cluster.create_database("slow")
    fault = _articles_locked(url)
    return run(Scenario.SLOW_DB, shape, fault, url=url, workers=workers, logs=SCRATCH)


# Pools a few clients outnumber, and a pool timeout shorter than the statement timeout: waiting
# for a connection, not the statement, is what times out.
SMALL_POOLS = {
    "CONDUIT_DB_POOL_SIZE": "2",
    "CONDUIT_DB_MAX_OVERFLOW": "0",
    "CONDUIT_DB_READ_POOL_SIZE": "4",
    "CONDUIT_DB_POOL_TIMEOUT_SECONDS": "2",
}


def _pool_exhausted(cluster: Cluster, workers: int) -> Result:
    shape = Shape(
        "pools of 4 read and 2 write connections, the articles table locked",
        readers=16,
        writers=4,
        before_seconds=4,
        fault_seconds=10,
        after_seconds=6,
        env={"CONDUIT_CACHE_ENABLED": "false", **SMALL_POOLS},
    )
    url = cluster.create_database("pools")
    fault = _articles_locked(url)
    return run(Scenario.POOL_EXHAUSTED, shape, fault, url=url, workers=workers, logs=SCRATCH)


def measure(
    scenario: Scenario, cluster: Cluster, *, workers: int, outage: float, mode: StopMode
) -> Result:
    """The scenario on a database of its own in `cluster`; `outage` and `mode` are db-restart's
    and redis-restart's."""
    match scenario:
        case Scenario.DB_RESTART:
            return _db_restart(cluster, workers, outage, mode)
        case Scenario.REDIS_RESTART:
            return _redis_restart(cluster, workers, outage)
        case Scenario.SLOW_DB:
            return _slow_db(cluster, workers)
        case Scenario.POOL_EXHAUSTED:
            return _pool_exhausted(cluster, workers)
