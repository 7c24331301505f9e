"""`conduit recount`: the article total counted again, correcting a total that drifted (a rolling
deploy across 3c1f9b7d2e84 counted every article the older release wrote twice) and leaving a
right one alone, while writers run."""

import asyncio

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from typer.testing import CliRunner

from conduit import cli, migrations
from conduit.articles import service as articles_service
from conduit.articles.models import Article, ArticleTotal
from conduit.auth.models import User
from conduit.cache import Uncached
from conduit.database import create_sessions, transaction
from tests.app_clients import clients_of
from tests.factories import create_article, register

pytestmark = pytest.mark.anyio

runner = CliRunner()


async def _write_as_0_3_0_did(connection: AsyncConnection, *, slug: str) -> None:
    """An article created the way release 0.3.0 did, which kept the total itself, now that the
    triggers count it too."""
    author = await connection.scalar(select(User.id).limit(1))
    await connection.execute(
        insert(Article).values(slug=slug, title=slug, description="", body="", author_id=author)
    )
    await connection.execute(update(ArticleTotal).values(count=ArticleTotal.count + 1))


async def _articles_count(client: AsyncClient) -> int:
    response = await client.get("/api/articles")
    assert response.status_code == 200, response.text
    count: int = response.json()["articlesCount"]
    return count


async def test_recount_corrects_a_total_counted_twice_and_the_lists_cached_with_it(
    app: FastAPI, client: AsyncClient, connection: AsyncConnection
) -> None:
    token = await register(client, "jake")
    await create_article(client, token, title="One")
    await _write_as_0_3_0_did(connection, slug="two")
    drifted = await _articles_count(client)
    sessions = async_sessionmaker(connection, join_transaction_mode="create_savepoint")

    async with transaction(sessions, cache=clients_of(app).cache) as session:
        recounted = await articles_service.recount_total(session)
    async with transaction(sessions, cache=clients_of(app).cache) as session:
        again = await articles_service.recount_total(session)

    assert drifted == 3
    assert recounted == (3, 2)
    assert again == (2, 2)
    assert await _articles_count(client) == 2


async def _conduit_recount(engine: AsyncEngine) -> str:
    """`conduit recount` in this process, on a thread of its own (it runs its own event loop)."""
    url = engine.url.render_as_string(hide_password=False)
    result = await asyncio.to_thread(runner.invoke, cli.app, ["recount"], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    return result.output


async def test_conduit_recount_says_what_it_corrected_and_then_that_the_total_is_right(
    empty_engine: AsyncEngine,
) -> None:
    await migrations.upgrade(empty_engine)
    async with empty_engine.begin() as connection:
        await connection.execute(
            insert(User).values(username="jake", email="jake@example.com", password_hash="x")
        )
        for slug in ("one", "two"):
            await _write_as_0_3_0_did(connection, slug=slug)

    assert await _conduit_recount(empty_engine) == "Article total: 4, corrected to 2.\n"
    assert await _conduit_recount(empty_engine) == "Article total: 2, right.\n"


async def test_recount_waits_for_a_writer_holding_the_total_and_counts_its_article(
    empty_engine: AsyncEngine,
) -> None:
    """The writer's trigger has changed the total's row and its transaction is still open: the
    recount must wait for it and count its article."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    await migrations.upgrade(empty_engine)
    async with empty_engine.begin() as connection:
        await connection.execute(
            insert(User).values(username="jake", email="jake@example.com", password_hash="x")
        )

    async def recount() -> tuple[int, int]:
        async with transaction(create_sessions(empty_engine), cache=Uncached()) as session:
            return await articles_service.recount_total(session)

    async with empty_engine.connect() as writer, empty_engine.connect() as observer:
        await writer.execute(
            insert(Article).values(
                slug="written", title="Written", description="", body="", author_id=1
            )
        )
        recounting = asyncio.create_task(recount())
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while not await observer.scalar(waiting):
            await observer.rollback()
            await asyncio.sleep(0.01)
        await writer.commit()
        recounted = await recounting

    async with empty_engine.connect() as connection:
        total = await connection.scalar(select(ArticleTotal.count))
        articles = await connection.scalar(select(func.count()).select_from(Article))
    assert recounted == (1, 1)
    assert total == articles == 1
