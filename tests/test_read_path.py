"""The read path: reads run on connections of their own that cannot write, never through the
write engine, keep the order their statements ask for, and survive dropped connections."""

import json
import subprocess

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Select, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from conduit import database
from conduit.api_keys.models import ApiKey
from conduit.config import Settings
from conduit.database import Read, SessionReader, create_sessions
from conduit.sql_json import JSONFunctions, as_text
from conduit.tags.models import Tag
from tests.app_clients import clients_of
from tests.factories import auth, create_api_key, create_article, register
from tests.readers import driver_reader
from tests.statements import StatementRecorder

pytestmark = pytest.mark.anyio


def _names(*, descending: bool) -> Read[str]:
    def build(j: JSONFunctions) -> Select[str]:
        rows = select(Tag.name).subquery()
        order = rows.c.name.desc() if descending else rows.c.name.asc()
        return select(as_text(j.array(rows.c.name, from_=rows, order_by=[order])))

    return Read(build)


async def test_an_aggregate_keeps_the_order_its_statement_asks_for(
    connection: AsyncConnection,
) -> None:
    """Two aggregates over the same column in opposite orders are two statements, for the
    driver's reads and for SQLAlchemy's compiled cache alike."""
    await connection.execute(insert(Tag), [{"name": n} for n in ("b", "c", "a")])
    ascending, descending = _names(descending=False), _names(descending=True)
    async with create_sessions(connection)() as session:
        for reader in (await driver_reader(connection), SessionReader(session)):
            first, second = await reader.scalar(ascending), await reader.scalar(descending)
            assert [json.loads(first or ""), json.loads(second or "")] == [
                ["a", "b", "c"],
                ["c", "b", "a"],
            ]


async def test_reads_never_touch_the_write_engine(
    app: FastAPI, committing_client: AsyncClient
) -> None:
    token = await register(committing_client, "reader")
    article = await create_article(committing_client, token, tags=["t"])
    paths = [
        "/api/articles",
        "/api/articles/feed",
        f"/api/articles/{article['slug']}",
        f"/api/articles/{article['slug']}/comments",
        "/api/profiles/reader",
        "/api/tags",
        "/api/user",
    ]
    with StatementRecorder.listening(clients_of(app).database.engine) as writes:
        for path in paths:
            for headers in ({}, auth(token)):
                response = await committing_client.get(path, headers=headers)
                assert response.status_code in {200, 401}, response.text
    assert writes.statements == []


async def test_a_get_with_an_api_key_commits_its_use(
    committing_client: AsyncClient, engine: AsyncEngine
) -> None:
    """Reading with an API key writes `last_used_at`; the write must commit although the
    request is a GET served by the read-only path."""
    token = await register(committing_client, "machine")
    key = await create_api_key(committing_client, token, scopes=["read"])

    response = await committing_client.get("/api/articles", headers={"X-API-Key": key["key"]})

    assert response.status_code == 200, response.text
    async with engine.connect() as connection:
        assert await connection.scalar(select(ApiKey.last_used_at)) is not None


async def _terminate_other_backends(engine: AsyncEngine) -> None:
    """End every other client connection to the test database, as a restart would, and wait
    until the server has closed them."""
    # Autocommit: pg_stat_activity is a snapshot that holds still for a whole transaction.
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        pids = list(
            await connection.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
            )
        )
        assert pids, "the app holds pooled connections"
        await connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
            {"pids": pids},
        )
        alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(CAST(:pids AS int[]))")
        while await connection.scalar(alive, {"pids": pids}):  # noqa: ASYNC110 - polling the server
            await anyio.sleep(0.01)


async def test_reads_and_writes_recover_when_connections_drop(
    committing_client: AsyncClient, engine: AsyncEngine
) -> None:
    """A database restart or failover closes every pooled connection; with no pre-ping, the
    next requests must still succeed on new ones."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite connections are files, not sockets that can drop")
    token = await register(committing_client, "survivor")
    assert (await committing_client.get("/api/articles")).status_code == 200

    await _terminate_other_backends(engine)

    assert (await committing_client.get("/api/articles")).status_code == 200
    assert (await committing_client.get("/api/user", headers=auth(token))).status_code == 200
    await create_article(committing_client, token)


def _psql(url: str, query: str) -> str:
    """Run a query with the psql the PostgreSQL server's machine has (CI starts it with its
    tools), synchronously: the point is to not give the event loop a turn."""
    # psql from PATH, as .ci/run takes pg_isready; the arguments are the test's own.
    command = ["psql", url, "-Atc", query]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    return completed.stdout.strip()


def _terminate_while_the_loop_waits(url: str, pid: int) -> None:
    """Terminate a backend and wait for it to exit, blocking the event loop on purpose: the
    driver cannot notice that its connection is gone, as when a failover happens between two
    requests on a busy process."""
    _psql(url, f"SELECT pg_terminate_backend({pid})")
    alive = f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"  # noqa: S608 - an int
    while _psql(url, alive) != "0":
        pass


async def test_a_read_on_a_connection_that_died_unnoticed_runs_again(settings: Settings) -> None:
    if settings.database.is_sqlite:
        pytest.skip("SQLite connections are files, not sockets that can drop")
    backend_pid: Read[int] = Read(lambda _: select(func.pg_backend_pid()))
    async with database.connect(settings.database) as db:
        first = await db.reader.scalar(backend_pid)
        assert first is not None

        _terminate_while_the_loop_waits(settings.database.asyncpg_dsn, first)

        second = await db.reader.scalar(backend_pid)
        assert second not in {None, first}
