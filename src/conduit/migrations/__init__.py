"""Alembic migrations, the only source of the schema, shipped inside the package so that an
installed Conduit can migrate its own database."""

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


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
