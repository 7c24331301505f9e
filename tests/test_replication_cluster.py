"""The replicated cluster and PgBouncer of `tests.replication` do what the tests of reads on a
replica and behind a pooler will rely on: the replica applies a write only after its delay, which
can be changed while it runs; a stopped replica refuses connections, a paused one leaves them
hanging, and both come back; PgBouncer in transaction mode answers asyncpg (without its statement
cache) on fewer server connections than it has clients."""

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.databases import POSTGRES_PASS
from tests.replication import (
    POOL_SIZE,
    SUPERUSER,
    Replication,
    pgbouncer,
    replicated_cluster,
    require_cluster,
    require_pgbouncer,
)

pytestmark = [
    pytest.mark.anyio,
    POSTGRES_PASS,
]

APPLY_DELAY_MS = 1000
# Connecting to a server that answers takes milliseconds; one that is paused never answers.
HANG_SECONDS = 0.5
CLIENTS = 10


@pytest.fixture(scope="module")
def cluster() -> Iterator[Replication]:
    require_cluster()
    with replicated_cluster(apply_delay_ms=APPLY_DELAY_MS) as started:
        started.primary.query("CREATE TABLE notes (body text NOT NULL)")
        started.wait_for_replay()
        yield started


@pytest.fixture(scope="module")
def pgbouncer_here() -> None:
    require_pgbouncer()


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    # Without its statement cache, asyncpg prepares only unnamed statements, which transaction
    # pooling can carry.
    connection = await asyncpg.connect(url, statement_cache_size=0)
    try:
        yield connection
    finally:
        await connection.close()


async def _write(url: str, body: str) -> None:
    async with _connected(url) as connection:
        await connection.execute("INSERT INTO notes (body) VALUES ($1)", body)


async def _count(url: str, body: str) -> int:
    async with _connected(url) as connection:
        found: int = await connection.fetchval("SELECT count(*) FROM notes WHERE body = $1", body)
        return found


async def test_a_write_reaches_the_replica_only_after_the_apply_delay(
    cluster: Replication,
) -> None:
    async with _connected(cluster.replica.url) as replica:
        written = time.monotonic()
        await _write(cluster.primary.url, "late")
        seen_at_once = await replica.fetchval("SELECT count(*) FROM notes WHERE body = 'late'")
        cluster.wait_for_replay()
        seen_after = await replica.fetchval("SELECT count(*) FROM notes WHERE body = 'late'")

    assert (seen_at_once, seen_after) == (0, 1)
    assert time.monotonic() - written >= APPLY_DELAY_MS / 1000


async def test_the_apply_delay_changes_while_the_replica_runs(cluster: Replication) -> None:
    cluster.set_apply_delay(60_000)
    try:
        await _write(cluster.primary.url, "held back")
        await anyio.sleep(1.5 * APPLY_DELAY_MS / 1000)
        assert await _count(cluster.replica.url, "held back") == 0
        cluster.set_apply_delay(0)
        # Within its bound only if the transaction held back is applied at once.
        cluster.wait_for_replay(timeout=10)
        assert await _count(cluster.replica.url, "held back") == 1
    finally:
        cluster.set_apply_delay(APPLY_DELAY_MS)


async def test_a_stopped_replica_refuses_connections_and_catches_up_when_started(
    cluster: Replication,
) -> None:
    cluster.replica.stop()
    try:
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(cluster.replica.url)
        await _write(cluster.primary.url, "while stopped")
    finally:
        cluster.replica.start()
    cluster.wait_for_replay()

    assert await _count(cluster.replica.url, "while stopped") == 1


async def test_a_paused_replica_leaves_connections_hanging_until_resumed(
    cluster: Replication,
) -> None:
    cluster.replica.pause()
    try:
        with pytest.raises(TimeoutError):
            await asyncpg.connect(cluster.replica.url, timeout=HANG_SECONDS)
    finally:
        cluster.replica.resume()

    assert await _count(cluster.replica.url, "never written") == 0


async def _backends_serving(url: str) -> set[int]:
    """The server processes that answered CLIENTS clients asking at the same time, each twice
    over (and what they answered was right)."""
    backends: set[int] = set()

    async def ask(client: int) -> None:
        async with _connected(url) as connection:
            for _ in range(2):
                backend, answer = await connection.fetchrow(
                    "SELECT pg_backend_pid(), $1::int + 1 FROM pg_sleep(0.02)", client
                )
                assert answer == client + 1
                backends.add(backend)

    async with anyio.create_task_group() as group:
        for client in range(CLIENTS):
            group.start_soon(ask, client)
    return backends


@pytest.mark.usefixtures("pgbouncer_here")
async def test_pgbouncer_shares_few_server_connections_among_its_clients(
    cluster: Replication,
) -> None:
    with pgbouncer("127.0.0.1", cluster.primary.port) as bouncer:
        backends = await _backends_serving(bouncer.url(cluster.primary.database))

    assert 1 <= len(backends) <= POOL_SIZE


@pytest.mark.usefixtures("pgbouncer_here")
async def test_pgbouncer_fronts_the_test_database_server() -> None:
    server = make_url(os.environ["TEST_DATABASE_URL"])
    if server.username != SUPERUSER or server.password:
        pytest.skip(f"PgBouncer here connects as {SUPERUSER} without a password")
    with pgbouncer(server.host or "127.0.0.1", server.port or 5432) as bouncer:
        backends = await _backends_serving(bouncer.url(server.database or SUPERUSER))

    assert 1 <= len(backends) <= POOL_SIZE
