"""`conduit seed`: a deterministic dataset that respects the API's rules and that the API serves."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from typer.testing import CliRunner

from conduit import seed as seeding
from conduit.articles.schemas import NewArticle
from conduit.auth.schemas import NewUser
from conduit.cli import app
from conduit.models import Article, ArticleTag, Base, Comment, Favorite, Follow, Tag, User
from tests.factories import auth

pytestmark = pytest.mark.anyio

TINY = seeding.Scale(users=12, articles=40, favorites=90, follows=30, comments=60, tags=20)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def _seed(connection: AsyncConnection, seed: int = 7) -> seeding.Plan:
    plan = seeding.plan(TINY, seed=seed, now=NOW)
    await seeding.seed(connection, plan)
    return plan


async def test_writes_the_planned_rows(connection: AsyncConnection) -> None:
    plan = seeding.plan(TINY, seed=7, now=NOW)
    reported: list[int] = []

    await seeding.seed(connection, plan, on_progress=reported.append)

    for table, expected in plan.counts.items():
        count = await connection.scalar(
            select(func.count()).select_from(Base.metadata.tables[table])
        )
        assert count == expected, table
    assert plan.counts["articles"] == 40
    assert plan.counts["favorites"] == 90
    assert sum(reported) == sum(plan.counts.values())


async def _dump(engine: AsyncEngine, seed: int) -> dict[str, list[tuple[object, ...]]]:
    """Every seeded row but the password hashes (salted), seeded in a rolled-back transaction."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await _seed(connection, seed)
        dump = {}
        for name in seeding.SEEDED_TABLES:
            table = Base.metadata.tables[name]
            columns = [column for column in table.columns if column.name != "password_hash"]
            query = select(*columns).order_by(*table.primary_key.columns)
            dump[name] = [tuple(row) for row in await connection.execute(query)]
        await transaction.rollback()
    return dump


async def test_the_same_seed_gives_the_same_rows(engine: AsyncEngine) -> None:
    first = await _dump(engine, seed=7)
    again = await _dump(engine, seed=7)
    other = await _dump(engine, seed=8)

    assert first == again
    assert first["articles"] != other["articles"]
    assert first["favorites"] != other["favorites"]


async def test_the_data_passes_the_apis_validation(connection: AsyncConnection) -> None:
    await _seed(connection)

    for username, email in await connection.execute(select(User.username, User.email)):
        user = NewUser(username=username, email=email, password=seeding.SEED_PASSWORD)
        assert (user.username, user.email) == (username, email)
    tags = (
        await connection.execute(
            select(ArticleTag.article_id, Tag.name)
            .join(Tag, Tag.id == ArticleTag.tag_id)
            .order_by(Tag.name)
        )
    ).all()
    articles = select(Article.id, Article.title, Article.description, Article.body)
    for article_id, title, description, body in await connection.execute(articles):
        tag_list = [name for tagged, name in tags if tagged == article_id]
        article = NewArticle(title=title, description=description, body=body, tag_list=tag_list)
        assert (article.title, article.description, article.tag_list) == (
            title,
            description,
            tag_list,
        )
        assert seeding.BODY_CHARS[0] <= len(body) <= seeding.BODY_CHARS[1]
    slugs = await connection.scalars(select(Article.slug))
    assert len(set(slugs)) == TINY.articles


async def test_timestamps_follow_cause_and_effect(connection: AsyncConnection) -> None:
    await _seed(connection)

    users = {row.id: row.created_at for row in await connection.execute(select(User))}
    articles = {row.id: row for row in await connection.execute(select(Article))}
    comments = (await connection.execute(select(Comment).order_by(Comment.id))).all()
    assert min(users.values()) >= NOW - seeding.SPAN
    for article in articles.values():
        assert users[article.author_id] <= article.created_at <= article.updated_at <= NOW
    for comment in comments:
        assert comment.created_at > articles[comment.article_id].created_at
        assert users[comment.author_id] < comment.created_at <= NOW
    assert [comment.created_at for comment in comments] == sorted(
        comment.created_at for comment in comments
    )
    follows = (await connection.execute(select(Follow))).all()
    assert all(follow.follower_id != follow.followee_id for follow in follows)


async def test_refuses_a_database_with_data(connection: AsyncConnection) -> None:
    await _seed(connection)

    with pytest.raises(seeding.DatabaseNotReady, match="table tags is not empty"):
        await _seed(connection)


def test_refuses_impossible_scales() -> None:
    with pytest.raises(ValueError, match="more favorites"):
        seeding.Scale(users=2, articles=2, favorites=5, follows=1, comments=1, tags=10)
    with pytest.raises(ValueError, match="at least"):
        seeding.Scale(users=1, articles=2, favorites=1, follows=0, comments=1, tags=10)


async def _login(client: AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/users/login", json={"user": {"email": email, "password": seeding.SEED_PASSWORD}}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["user"]["token"]
    return token


async def test_the_api_serves_the_seeded_data(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    await _seed(connection)
    reader_id, email = (
        await connection.execute(
            select(User.id, User.email)
            .where(User.id.in_(select(Follow.follower_id)))
            .order_by(User.id)
            .limit(1)
        )
    ).one()
    followed = select(Follow.followee_id).where(Follow.follower_id == reader_id)
    feed_count = await connection.scalar(
        select(func.count()).select_from(Article).where(Article.author_id.in_(followed))
    )
    popular_id, favorites = (
        await connection.execute(
            select(Favorite.article_id, func.count())
            .group_by(Favorite.article_id)
            .order_by(func.count().desc(), Favorite.article_id)
            .limit(1)
        )
    ).one()
    popular = await connection.scalar(select(Article.slug).where(Article.id == popular_id))
    comment_count = await connection.scalar(
        select(func.count()).select_from(Comment).where(Comment.article_id == popular_id)
    )
    token = await _login(client, email)

    listed = (await client.get("/api/articles?limit=5")).json()
    feed = (await client.get("/api/articles/feed", headers=auth(token))).json()
    article = (await client.get(f"/api/articles/{popular}")).json()["article"]
    comments = (await client.get(f"/api/articles/{popular}/comments")).json()["comments"]
    tags = (await client.get("/api/tags")).json()["tags"]

    assert listed["articlesCount"] == TINY.articles
    created = [item["createdAt"] for item in listed["articles"]]
    assert created == sorted(created, reverse=True)
    assert feed["articlesCount"] == feed_count
    assert article["favoritesCount"] == favorites
    assert len(article["body"]) >= seeding.BODY_CHARS[0]
    assert len(comments) == comment_count
    assert all(comment["createdAt"] > article["createdAt"] for comment in comments)
    assert tags == sorted(tags)
    assert set(tags) <= set(seeding.tag_vocabulary(TINY.tags))


runner = CliRunner()


def test_cli_seeds_a_migrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'seed.db'}")
    monkeypatch.setitem(seeding.SCALES, seeding.ScaleName.SMALL, TINY)

    unmigrated = runner.invoke(app, ["seed"])
    # In a process of its own: `conduit migrate` configures this process's logging.
    subprocess.run([sys.executable, "-m", "conduit", "migrate"], check=True, capture_output=True)
    seeded = runner.invoke(app, ["seed", "--scale", "small", "--seed", "3"])
    again = runner.invoke(app, ["seed"])

    assert unmigrated.exit_code == 1
    assert "run `conduit migrate` first" in unmigrated.output
    assert seeded.exit_code == 0, seeded.output
    assert "40 articles" in seeded.output
    assert again.exit_code == 1
    assert "already has data" in again.output
