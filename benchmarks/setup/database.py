"""The benchmark database of each scale: created, migrated and seeded by the harness, and reused
while it still carries the harness's mark (a comment on the database); the seeded rows the
scenarios use; and the environment every server the benchmarks start gets."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from conduit.config import DatabaseSettings
from conduit.models import Base
from conduit.seed import SEEDED_TABLES, ScaleName

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/conduit_bench_{scale}"
READERS = 8
# The slugs the article and comments scenarios rotate through: spread over the dataset, or at
# `tiny`, whose point is what a request costs whatever the data, a handful.
SLUGS = 100
TINY_SLUGS = 8
# Loopback only, for tokens that live as long as a run.
SECRET = "conduit-benchmark-secret-that-never-leaves-loopback"  # noqa: S105


def database_url(scale: str) -> str:
    """BENCH_DATABASE_URL, with `{scale}` replaced, or a database per scale on the local server."""
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL).format(scale=scale)


def _engine(url: str, *, autocommit: bool = False) -> AsyncEngine:
    isolation = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    return create_async_engine(DatabaseSettings(url=url).sqlalchemy_url, **isolation)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _marker(url: str) -> tuple[bool, str | None]:
    """Whether the database exists, and the harness's mark on it."""
    name = make_url(url).database
    engine = _engine(str(make_url(url).set(database="postgres")))
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                        " WHERE datname = :name"
                    ),
                    {"name": name},
                )
            ).first()
    finally:
        await engine.dispose()
    return row is not None, None if row is None else row[0]


async def _admin(url: str, *statements: str) -> None:
    engine = _engine(str(make_url(url).set(database="postgres")), autocommit=True)
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def _vacuum(url: str) -> None:
    engine = _engine(url, autocommit=True)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("VACUUM (ANALYZE)")
    finally:
        await engine.dispose()


def _conduit(url: str, *arguments: str, quiet: bool = False) -> None:
    env = {**_inherited(), "DATABASE_URL": url}
    command = [sys.executable, "-m", "conduit", *arguments]
    subprocess.run(command, env=env, check=True, capture_output=quiet)


def migrate(url: str, *, quiet: bool = False) -> None:
    """`conduit migrate` on the database at `url` (`conduit serve` refuses an older schema);
    with `quiet`, its output is not shown."""
    _conduit(url, "migrate", quiet=quiet)


def recreate(url: str) -> None:
    """Drop the database `url` names, if it exists, and create it empty."""
    name = _quoted(make_url(url).database or "")
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    asyncio.run(_admin(url, drop, f"CREATE DATABASE {name}"))


def driver_url(url: str | None = None) -> str:
    """`url`, or DATABASE_URL's, in the form asyncpg connects with."""
    settings = DatabaseSettings() if url is None else DatabaseSettings(url=url)
    return settings.sqlalchemy_url.set(drivername="postgresql").render_as_string(
        hide_password=False
    )


def sqlite_url(directory: Path) -> str:
    """A new SQLite database in `directory`, which `conduit serve` migrates at its start."""
    return f"sqlite+aiosqlite:///{directory / 'conduit.db'}"


@dataclass(frozen=True, slots=True)
class Prepared:
    scale: str
    url: str
    reused: bool
    seed_seconds: float | None
    counts: dict[str, int]


async def _counts(url: str) -> dict[str, int]:
    engine = _engine(url)
    try:
        async with engine.connect() as connection:
            tables = Base.metadata.tables
            return {
                name: int(
                    await connection.scalar(select(func.count()).select_from(tables[name])) or 0
                )
                for name in SEEDED_TABLES
            }
    finally:
        await engine.dispose()


def prepare(scale: str, seed: int) -> Prepared:
    """Reuse the scale's database if the harness seeded it with this seed, else (re)create it.
    A database without the mark is only ever seeded, never dropped: `conduit seed` refuses one
    that holds data."""
    url = database_url(scale)
    mark = f"conduit seed --scale {scale} --seed {seed}"
    exists, current = asyncio.run(_marker(url))
    if current == mark:
        migrate(url)
        counts = asyncio.run(_counts(url))
        return Prepared(scale, url, reused=True, seed_seconds=None, counts=counts)
    if current is not None or not exists:
        recreate(url)
    migrate(url)
    started = time.monotonic()
    _conduit(url, "seed", "--scale", scale, "--seed", str(seed))
    seconds = time.monotonic() - started
    # A live database is vacuumed by autovacuum; without the visibility map a fresh bulk load
    # has, index-only scans would visit the heap and the plans would not be the steady state's.
    asyncio.run(_vacuum(url))
    name = _quoted(make_url(url).database or "")
    asyncio.run(_admin(url, f"COMMENT ON DATABASE {name} IS '{mark}'"))
    counts = asyncio.run(_counts(url))
    return Prepared(scale, url, reused=False, seed_seconds=seconds, counts=counts)


@dataclass(frozen=True, slots=True)
class Fixtures:
    """Seeded users and articles the scenarios use."""

    reader_emails: list[str]
    slugs: list[str]
    commented_slugs: list[str]
    # (email, slug) pairs not favorited in the seed, for the writes of the mixed workload.
    unfavorited: list[tuple[str, str]]
    max_article_id: int
    max_comment_id: int


_READERS = """
    SELECT u.email FROM users u JOIN follows f ON f.follower_id = u.id
    GROUP BY u.id HAVING count(*) BETWEEN 5 AND 50 ORDER BY u.id LIMIT :readers
"""
_SLUGS = "SELECT slug FROM articles ORDER BY md5(id::text) LIMIT :slugs"
_COMMENTED = """
    SELECT slug FROM articles a WHERE EXISTS (SELECT FROM comments c WHERE c.article_id = a.id)
    ORDER BY md5(a.id::text) LIMIT :slugs
"""
_UNFAVORITED = """
    SELECT u.email, a.slug FROM users u CROSS JOIN LATERAL (
        SELECT slug FROM articles a
        WHERE NOT EXISTS (SELECT FROM favorites f WHERE f.article_id = a.id AND f.user_id = u.id)
        ORDER BY md5(a.id::text) LIMIT 2
    ) a
    WHERE u.email IN :emails ORDER BY u.email, a.slug
"""


async def _fixtures(url: str, slug_count: int) -> Fixtures:
    engine = _engine(url)
    try:
        async with engine.connect() as connection:
            readers = list(await connection.scalars(text(_READERS), {"readers": READERS}))
            slugs = list(await connection.scalars(text(_SLUGS), {"slugs": slug_count}))
            commented = list(await connection.scalars(text(_COMMENTED), {"slugs": slug_count}))
            unfavorited = await connection.execute(
                text(_UNFAVORITED).bindparams(bindparam("emails", expanding=True)),
                {"emails": readers},
            )
            pairs = [(email, slug) for email, slug in unfavorited]
            max_article = await connection.scalar(text("SELECT max(id) FROM articles"))
            max_comment = await connection.scalar(text("SELECT coalesce(max(id), 0) FROM comments"))
    finally:
        await engine.dispose()
    return Fixtures(readers, slugs, commented, pairs, int(max_article), int(max_comment))


def fixtures(prepared: Prepared) -> Fixtures:
    """The seeded rows the scenarios use."""
    slug_count = TINY_SLUGS if prepared.scale == ScaleName.TINY else SLUGS
    return asyncio.run(_fixtures(prepared.url, slug_count))


async def _restore(url: str, seeded: Fixtures) -> None:
    engine = _engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM articles WHERE id > :id"), {"id": seeded.max_article_id}
            )
            await connection.execute(
                text("DELETE FROM comments WHERE id > :id"), {"id": seeded.max_comment_id}
            )
            for email, slug in seeded.unfavorited:
                await connection.execute(
                    text(
                        "DELETE FROM favorites WHERE user_id = (SELECT id FROM users"
                        " WHERE email = :email) AND article_id = (SELECT id FROM articles"
                        " WHERE slug = :slug)"
                    ),
                    {"email": email, "slug": slug},
                )
            await connection.execute(
                text("UPDATE article_totals SET count = (SELECT count(*) FROM articles)")
            )
    finally:
        await engine.dispose()


def restore(url: str, seeded: Fixtures) -> None:
    """Undo the mixed workload's writes, so that the next run measures the seeded dataset."""
    asyncio.run(_restore(url, seeded))


async def _postgres_version(url: str) -> str:
    engine = _engine(url)
    try:
        async with engine.connect() as connection:
            return str(await connection.scalar(text("SHOW server_version")))
    finally:
        await engine.dispose()


def postgres_version(url: str) -> str:
    return asyncio.run(_postgres_version(url))


def without_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# wrk sends thousands of requests a second from one address: the policies that count them are
# kept, at quotas they never reach, so that what limiting costs is measured, not its refusals.
_UNREACHED_QUOTAS = {
    f"CONDUIT_RATE_LIMIT_{policy}__QUOTA": "1000000"
    for policy in ("ANONYMOUS", "READS", "WRITES", "SIGN_IN")
}
_STORE_VARIABLES = ("REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN")


def _inherited() -> dict[str, str]:
    """This process's environment without Conduit's settings, its shared store and its job
    queue: a Conduit process the benchmarks start gets only the settings they give it."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONDUIT_", "QSTASH_")) and key not in _STORE_VARIABLES
    }


def server_env(url: str) -> Mapping[str, str]:
    """The environment every server gets; the shared store is chosen per target (`--redis`)."""
    return {**_inherited(), **_UNREACHED_QUOTAS, "DATABASE_URL": url, "CONDUIT_SECRET_KEY": SECRET}
