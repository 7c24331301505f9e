"""Conduit behind a stock PgBouncer in transaction mode (`tests.replication.pgbouncer`): its
connections send no startup parameter PgBouncer refuses, and, told that the pooler carries no
prepared statement between server connections (`CONDUIT_DB_PREPARED_STATEMENTS=false`), many
requests at once, sharing a few server connections, are all answered right. Left to keep
named prepared statements, the same requests fail (503, with a log line naming the setting) or,
worse, run another request's statement: the setting is what makes the difference."""

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url

from conduit.config import CacheSettings, DatabaseSettings, Settings
from conduit.database import create_engine
from conduit.main import create_app
from conduit.migrations import upgrade
from tests.databases import POSTGRES_PASS, create_postgres_database, drop_postgres_database
from tests.factories import auth
from tests.replication import (
    PREPARED_STATEMENTS_SINCE,
    PgBouncer,
    pgbouncer,
    pgbouncer_version,
    require_pgbouncer,
)

pytestmark = [
    pytest.mark.anyio,
    POSTGRES_PASS,
]

CONCURRENT = 24
ROUNDS = 3


@pytest.fixture(scope="module")
async def database() -> AsyncIterator[str]:
    server_url = os.environ["TEST_DATABASE_URL"]
    url = await create_postgres_database(server_url)
    engine = create_engine(DatabaseSettings(url=url))
    try:
        await upgrade(engine)
        await engine.dispose()
        yield url
    finally:
        await drop_postgres_database(server_url, url)


@pytest.fixture(scope="module")
def bouncer(database: str) -> Iterator[PgBouncer]:
    require_pgbouncer()
    if pgbouncer_version() >= PREPARED_STATEMENTS_SINCE:
        pytest.skip(
            "this PgBouncer carries prepared statements; these tests are of one that does not"
        )
    direct = make_url(database)
    with pgbouncer(direct.host or "127.0.0.1", direct.port or 5432) as started:
        yield started


@asynccontextmanager
async def _behind(
    settings: Settings, bouncer: PgBouncer, database: str, *, prepared_statements: bool
) -> AsyncIterator[AsyncClient]:
    pooled = DatabaseSettings(
        url=bouncer.url(make_url(database).database or ""),
        direct_url=database,
        prepared_statements=prepared_statements,
        statement_timeout_seconds=settings.database.statement_timeout_seconds,
        pool_timeout_seconds=settings.database.pool_timeout_seconds,
    )
    app: FastAPI = create_app(
        settings.model_copy(
            update={
                "database": pooled,
                "cache": CacheSettings(enabled=False),
                # A crowd of sign-ups from one address.
                "rate_limit": settings.rate_limit.model_copy(update={"enabled": False}),
            }
        )
    )
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def _crowd(client: AsyncClient) -> list[int]:
    """Requests at once, each caller writing and reading: every answer's status, and -1 for
    an answer with another's document."""
    statuses: list[int] = []

    async def one(number: int) -> None:
        username = f"u{uuid.uuid4().hex[:10]}"
        user = {"username": username, "email": f"{username}@example.com", "password": "p" * 12}
        registered = await client.post("/api/users", json={"user": user})
        statuses.append(registered.status_code)
        if registered.status_code != 201:
            return
        token = registered.json()["user"]["token"]
        article = {"title": f"Crowded {number}", "description": "d", "body": "b"}
        created = await client.post("/api/articles", headers=auth(token), json={"article": article})
        statuses.append(created.status_code)
        if created.status_code != 201:
            return
        slug = created.json()["article"]["slug"]
        for _ in range(ROUNDS):
            read = await client.get(f"/api/articles/{slug}", headers=auth(token))
            statuses.append(read.status_code)
            if read.status_code == 200 and read.json()["article"]["title"] != article["title"]:
                statuses.append(-1)
            listed = await client.get("/api/articles", params={"limit": 5})
            statuses.append(listed.status_code)

    async with anyio.create_task_group() as crowd:
        for number in range(CONCURRENT):
            crowd.start_soon(one, number)
    return statuses


async def test_many_requests_at_once_behind_pgbouncer(
    settings: Settings, bouncer: PgBouncer, database: str
) -> None:
    async with _behind(settings, bouncer, database, prepared_statements=False) as client:
        assert (await client.get("/health/ready")).status_code == 200
        statuses = await _crowd(client)
    assert set(statuses) == {200, 201}


async def test_named_prepared_statements_fail_behind_pgbouncer(
    settings: Settings, bouncer: PgBouncer, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Left on, they fail, each answered 503 like any database fault, and the log says which
    setting to change."""
    async with _behind(settings, bouncer, database, prepared_statements=True) as client:
        with caplog.at_level(logging.WARNING, logger="conduit.database"):
            statuses = await _crowd(client)
    # Some of the failures may be worse than errors: another request's document (-1).
    assert 503 in statuses
    assert 500 not in statuses
    assert any(
        "set CONDUIT_DB_PREPARED_STATEMENTS=false" in record.getMessage()
        for record in caplog.records
    )
