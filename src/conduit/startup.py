"""What `conduit serve` and `conduit worker` check once before they start (docs/operations.md,
"Start-up checks"): whether the database answers and how its schema stands to this release's,
and whether the shared store answers. Each check is bounded by its connect timeout, and what it
finds wrong is one log line that names the variable to fix and the likely cause.

A database older than this release refuses the start; one that does not answer refuses the
worker's, not the API's; a store that does not answer refuses neither (docs/decisions.md,
"Start-up").
"""

import asyncio
import logging

from sqlalchemy import exc

from conduit import database, kv
from conduit.config import DatabaseSettings, RedisSettings, Settings
from conduit.database import SCHEMA_REVISION, Schema

logger = logging.getLogger(__name__)

NOT_MIGRATED = "The database is not migrated to this release: run `conduit migrate` first."


class Refused(Exception):
    """The process must not start; the line saying why is logged."""


async def _revision(settings: DatabaseSettings) -> str | None:
    """The database's migration, read on a connection of its own within the connect timeout."""
    engine = database.create_engine(settings, bounded=True)
    try:
        async with asyncio.timeout(settings.connect_timeout_seconds):
            return await database.schema_revision(engine)
    finally:
        await engine.dispose()


async def _schema(settings: DatabaseSettings, *, required: bool) -> Schema | None:
    """How the database's schema stands to this release's; None when the database does not
    answer, which is logged: a warning, or an error when the database is `required`."""
    try:
        revision = await _revision(settings)
    except (exc.DBAPIError, *database.UNAVAILABLE) as error:
        if not database.unavailable(error):
            raise
        logger.log(
            logging.ERROR if required else logging.WARNING,
            "database_unreachable",
            extra={"detail": f"DATABASE_URL: {database.explain(settings, error)}"},
        )
        return None
    schema = await database.schema_standing(revision)
    if schema is Schema.NEWER:
        logger.warning(
            "schema_newer",
            extra={
                "revision": revision,
                "release_revision": SCHEMA_REVISION,
                "detail": "a later release migrated the database; this release runs on it, as "
                "during a rolling deploy, until its processes are replaced",
            },
        )
    return schema


async def _store(settings: RedisSettings) -> None:
    async with kv.connect(settings) as store:
        if isinstance(store, kv.Memory):
            return
        try:
            await store.run([("PING",)])
        except kv.Unavailable as error:
            logger.warning(
                "shared_store_unreachable",
                extra={"store": store.outage.store, "detail": store.outage.explain(error)},
            )


async def check(settings: Settings, *, database_required: bool) -> None:
    """Check the database and the shared store at once. Refused (the line is logged): a schema
    older than this release's, unless the database is the embedded SQLite default, which
    migrates itself; and, when `database_required`, a database that does not answer."""
    schema, _ = await asyncio.gather(
        _schema(settings.database, required=database_required), _store(settings.redis)
    )
    if schema is None and database_required:
        raise Refused
    if schema is Schema.OLDER and not settings.database.is_sqlite:
        logger.error(NOT_MIGRATED)
        raise Refused
