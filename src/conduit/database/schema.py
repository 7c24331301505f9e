"""Where a database's schema stands to this release's: the one revision this release's code
runs on, read with one query."""

import asyncio
import sqlite3
from enum import StrEnum

import asyncpg
from sqlalchemy import column, inspect, select, table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit.database.read_path import Read, Reader

# The migration this release's code runs on (`tests/test_migrations.py` checks that it is
# Alembic's head): whether a database is up to date is then one query, without Alembic.
SCHEMA_REVISION = "9c4e2a7b51d3"


class Schema(StrEnum):
    """How a database's schema stands to this release's (docs/decisions.md, "Start-up")."""

    CURRENT = "ok"
    # Migrated by a later release, as during a rolling deploy: this release still runs on it.
    NEWER = "newer"
    # Not migrated to this release, or never migrated: `conduit migrate` has not run.
    OLDER = "older"


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at, None before the first."""
    async with engine.connect() as connection:
        if not await connection.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            return None
        revision: str | None = await connection.scalar(
            text("SELECT version_num FROM alembic_version")
        )
        return revision


_REVISION: Read[str] = Read(
    lambda _: select(column("version_num")).select_from(table("alembic_version"))
)


async def read_schema_revision(reader: Reader) -> str | None:
    """`schema_revision` on the read path's connections (the health check's)."""
    try:
        return await reader.scalar(_REVISION)
    except asyncpg.exceptions.UndefinedTableError:
        return None
    except sqlite3.OperationalError as error:
        if not str(error).startswith("no such table"):
            raise
        return None


def _standing(revision: str | None) -> Schema:
    from conduit import migrations  # noqa: PLC0415 (Alembic only for a schema not this release's)

    return migrations.standing(revision)


async def schema_standing(revision: str | None) -> Schema:
    """How a database at `revision` stands to this release: one comparison when it is this
    release's, else Alembic's revision graph, loaded in a thread (a few tenths of a second,
    once)."""
    if revision == SCHEMA_REVISION:
        return Schema.CURRENT
    return await asyncio.to_thread(_standing, revision)
