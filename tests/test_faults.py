"""A slow or saturated database is answered 503 in the API's error shape with `Retry-After`,
after a bounded time, and reported in one log line without a traceback: a statement held up by
a lock is cancelled after the statement timeout (by the driver on PostgreSQL, SQLite's busy
timeout), and a request that finds every pooled connection busy gives up after the pool
timeout, on the read path and the write path.

The same faults under load, and a restart of PostgreSQL, are measured by `benchmarks.faults`
(docs/operations.md, "Faults under load")."""

import contextlib
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from httpx import ASGITransport, AsyncClient, Response

from conduit import database, migrations
from conduit.config import CacheSettings, DatabaseSettings, RedisSettings, Settings
from conduit.database import outage
from conduit.main import create_app
from tests.databases import create_postgres_database, drop_postgres_database
from tests.factories import PASSWORD, auth, register

pytestmark = pytest.mark.anyio

STATEMENT_TIMEOUT = 0.5
POOL_TIMEOUT = 0.3
# Far beyond either: a request still waiting then waits for the lock to go. The bound on how
# long a refused request took (`_timed`): how much sooner it comes is the machine's business.
HANG = 10.0
ARTICLE = {"article": {"title": "Held up", "description": "d", "body": "b"}}


@pytest.fixture(autouse=True)
def fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's first failure is reported, whatever the tests before it reported."""
    monkeypatch.setattr(database, "report_unavailable", outage._Reports().report)


@pytest.fixture(scope="module")
async def postgres_url() -> AsyncIterator[str]:
    """A migrated database of the module's own: the tests commit, and lock its tables."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url is None:
        pytest.skip("PostgreSQL only: TEST_DATABASE_URL is not set")
    url = await create_postgres_database(server_url)
    engine = database.create_engine(DatabaseSettings(url=url))
    try:
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    try:
        yield url
    finally:
        await drop_postgres_database(server_url, url)


@contextlib.asynccontextmanager
async def _serving(settings: Settings, on: DatabaseSettings) -> AsyncIterator[AsyncClient]:
    """The app on a database of the test's own, with real pools, every read reaching the
    database (no cache) and its store in memory."""
    app = create_app(
        settings.model_copy(
            update={
                "database": on,
                "redis": RedisSettings(url=None),
                "cache": CacheSettings(enabled=False),
            }
        )
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def _locked(url: str, table: str, mode: str) -> AsyncIterator[Any]:
    """`table` locked in `mode` by a transaction of another connection, which it yields."""
    connection = await asyncpg.connect(DatabaseSettings(url=url).asyncpg_dsn)
    try:
        async with connection.transaction():
            await connection.execute(f"LOCK TABLE {table} IN {mode} MODE")
            yield connection
    finally:
        await connection.close()


async def _until_a_statement_waits(locker: Any) -> None:
    """Polls the server's view of its sessions: nothing signals a statement's wait."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    with anyio.fail_after(HANG):
        for _ in itertools.count():
            # Within a transaction the view is a snapshot, taken at its first reading.
            await locker.execute("SELECT pg_stat_clear_snapshot()")
            if await locker.fetchval(waiting):
                return
            await anyio.sleep(0.01)


async def _timed(request: Awaitable[Response]) -> tuple[Response, float]:
    started = time.monotonic()
    with anyio.fail_after(HANG):
        response = await request
    return response, time.monotonic() - started


def _assert_unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"errors": {"database": ["is unavailable, retry shortly"]}}
    assert response.headers["retry-after"] == "5"


def _reported(caplog: pytest.LogCaptureFixture) -> str:
    """The one line that reports the database unavailable; no line has a traceback."""
    assert not [record for record in caplog.records if record.exc_info]
    reports = [r.getMessage() for r in caplog.records if r.msg.startswith("database_unavailable")]
    assert len(reports) == 1, reports
    return reports[0]


Send = Callable[[AsyncClient, str], Awaitable[Response]]


async def _list_articles(client: AsyncClient, _: str) -> Response:
    return await client.get("/api/articles")


async def _write_article(client: AsyncClient, token: str) -> Response:
    return await client.post("/api/articles", json=ARTICLE, headers=auth(token))


@pytest.mark.parametrize(
    ("send", "mode"),
    [
        pytest.param(_list_articles, "ACCESS EXCLUSIVE", id="read"),
        # Reads go on; writes wait.
        pytest.param(_write_article, "EXCLUSIVE", id="write"),
    ],
)
async def test_a_statement_held_up_by_a_lock_is_answered_503_after_the_statement_timeout(
    postgres_url: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    send: Send,
    mode: str,
) -> None:
    on = DatabaseSettings(url=postgres_url, statement_timeout_seconds=STATEMENT_TIMEOUT)
    where = f"{on.sqlalchemy_url.host}:{on.sqlalchemy_url.port or 5432}"
    async with _serving(settings, on) as client:
        token = await register(client, f"held-{send.__name__.strip('_')}")
        async with _locked(postgres_url, "articles", mode):
            response, waited = await _timed(send(client, token))
        after = await send(client, token)

    _assert_unavailable(response)
    assert waited >= STATEMENT_TIMEOUT
    assert after.status_code in {200, 201}
    assert _reported(caplog) == (
        f"database_unavailable: no answer from {where} within {on.connect_timeout_seconds:g} s "
        f"to connect or {STATEMENT_TIMEOUT:g} s for a statement: is it reachable from here (a "
        "firewall, another network), overloaded, or is a lock holding statements up?"
    )


@dataclass(frozen=True)
class OnePool:
    name: str
    # The pool's size: one connection.
    size: dict[str, int]
    send: Send
    # The lock that holds up its requests' statements.
    mode: str


@pytest.mark.parametrize(
    "pool",
    [
        OnePool("read", {"read_pool_size": 1}, _list_articles, "ACCESS EXCLUSIVE"),
        OnePool("write", {"pool_size": 1, "max_overflow": 0}, _write_article, "EXCLUSIVE"),
    ],
    ids=lambda pool: f"{pool.name}-pool",
)
async def test_a_request_that_finds_every_connection_busy_is_answered_503_after_the_pool_timeout(
    postgres_url: str, settings: Settings, caplog: pytest.LogCaptureFixture, pool: OnePool
) -> None:
    """The pool's one connection is held by a request whose statement waits for a lock; the
    next request gives up waiting for it after the pool timeout, well before the statement
    timeout, and the first is answered once the lock goes."""
    on = DatabaseSettings(
        url=postgres_url, statement_timeout_seconds=HANG, pool_timeout_seconds=POOL_TIMEOUT
    ).model_copy(update=pool.size)
    async with _serving(settings, on) as client:
        token = await register(client, f"pooled-{pool.name}")
        held: list[Response] = []

        async def hold() -> None:
            held.append(await pool.send(client, token))

        async with (
            anyio.create_task_group() as holders,
            _locked(postgres_url, "articles", pool.mode) as locker,
        ):
            holders.start_soon(hold)
            await _until_a_statement_waits(locker)
            response, waited = await _timed(pool.send(client, token))

    _assert_unavailable(response)
    assert waited >= POOL_TIMEOUT
    assert [answer.status_code for answer in held] in ([200], [201])
    assert _reported(caplog) == (
        f"database_unavailable: no connection of the {pool.name} pool came free within "
        f"{POOL_TIMEOUT:g} s: the database is slow, or the pool is too small for the load"
    )


async def _register(client: AsyncClient) -> Response:
    user = {"username": "locked", "email": "locked@example.com", "password": PASSWORD}
    return await client.post("/api/users", json={"user": user})


@pytest.mark.skipif("TEST_DATABASE_URL" in os.environ, reason="the embedded default's")
async def test_a_sqlite_database_locked_by_another_process_is_answered_503_after_the_timeout(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked.db"
    on = DatabaseSettings(
        url=f"sqlite+aiosqlite:///{path}", statement_timeout_seconds=STATEMENT_TIMEOUT
    )
    async with _serving(settings, on) as client:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            response, waited = await _timed(_register(client))
            # Readers do not wait for writers (WAL).
            read = await client.get("/api/tags")
            other.execute("ROLLBACK")
        after = await _register(client)

    _assert_unavailable(response)
    assert waited >= STATEMENT_TIMEOUT
    assert read.status_code == 200
    assert after.status_code == 201
    assert _reported(caplog) == (
        f"database_unavailable: the SQLite database {path} stayed locked by another "
        f"connection for {STATEMENT_TIMEOUT:g} s"
    )
