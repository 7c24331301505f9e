"""Throw-away PostgreSQL databases for tests that need a database of their own."""

import os
import secrets

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from conduit.config import DatabaseSettings

# For tests of PostgreSQL's own, which run in the pass where TEST_DATABASE_URL is set.
POSTGRES_PASS = pytest.mark.skipif(
    "TEST_DATABASE_URL" not in os.environ, reason="PostgreSQL's, in the PostgreSQL pass"
)


async def _admin(server_url: str, statement: str) -> None:
    """Run a statement that cannot run in a transaction, such as CREATE DATABASE."""
    engine = create_async_engine(
        DatabaseSettings(url=server_url).sqlalchemy_url, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


async def create_postgres_database(server_url: str, *, template: str | None = None) -> str:
    """Create a database on the server of `server_url`, empty or a copy of the database at
    `template` (which nothing may be connected to), and return its URL."""
    name = f"conduit_test_{secrets.token_hex(6)}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{copy}')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def stamp_revision(url: str, revision: str) -> None:
    """Record in Alembic's table of the database at `url` that it is at `revision`, as a
    migration (this release's, or another's) would."""
    engine = create_async_engine(DatabaseSettings(url=url).sqlalchemy_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"
                )
            )
            await connection.execute(text("DELETE FROM alembic_version"))
            await connection.execute(
                text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision}
            )
    finally:
        await engine.dispose()
