"""Alembic migrations, the only source of the schema, shipped inside the package so that an
installed Conduit can migrate its own database."""

import functools

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit.database import Schema


def include_object(_: object, name: str | None, type_: str, reflected: bool, __: object) -> bool:
    """PgQueuer's tables are PgQueuer's: created by a migration, never compared with Conduit's
    models."""
    return not (reflected and type_ == "table" and (name or "").startswith("pgqueuer"))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "conduit:migrations")
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync_connection: command.upgrade(alembic_config(sync_connection), revision)
        )


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync_connection: command.downgrade(alembic_config(sync_connection), revision)
        )


@functools.cache
def standing(revision: str | None) -> Schema:
    """How a database at `revision` stands to this release's head: the head itself, one of its
    ancestors (older: `conduit migrate` brings it up), or a revision this release's graph does
    not have. A later release's migrations descend from this head, so a revision they wrote is
    one this graph cannot know: an unknown revision is taken for newer (docs/decisions.md,
    "Start-up")."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if revision == head:
        return Schema.CURRENT
    ancestors = {ancestor.revision for ancestor in script.iterate_revisions(head, "base")}
    return Schema.OLDER if revision is None or revision in ancestors else Schema.NEWER
