"""Alembic migrations, the only source of the schema, shipped inside the package so that an
installed Conduit can migrate its own database.

`upgrade` applies each revision in a transaction of its own: a revision's locks are released
when it commits rather than held until the last one does, and a revision that fails is rolled
back whole, leaving the database at the revision before it (which the running release works
on: migrations are additive). On PostgreSQL a revision waits at most `lock_timeout_seconds` for
each lock: while a DDL statement waits, every later statement on its table queues behind it.
"""

import logging
import time
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

# PostgreSQL's lock_not_available: the lock timeout ran out.
_LOCK_NOT_AVAILABLE = "55P03"


def include_object(_: object, name: str | None, type_: str, reflected: bool, __: object) -> bool:
    """PgQueuer's tables are PgQueuer's: created by a migration, never compared with Conduit's
    models."""
    return not (reflected and type_ == "table" and (name or "").startswith("pgqueuer"))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "conduit:migrations")
    config.attributes["connection"] = connection
    return config


@dataclass(frozen=True, slots=True)
class Holder:
    """A session holding a lock on a table that a migration's statement waited for."""

    pid: int
    table: str
    mode: str
    application: str
    state: str
    transaction_seconds: float | None
    query: str

    def describe(self) -> str:
        age = (
            ""
            if self.transaction_seconds is None
            else f", in a transaction for {self.transaction_seconds:.0f} s"
        )
        application = f" ({self.application})" if self.application else ""
        return (
            f"pid {self.pid}{application} holds {self.mode} on {self.table}: "
            f"{self.state}{age}, last statement {self.query!r}"
        )


class LockTimeout(Exception):
    """A revision waited longer than the lock timeout for a lock, and was rolled back."""

    def __init__(
        self,
        *,
        revision: str,
        previous: str | None,
        statement: str,
        timeout_seconds: float,
        holders: list[Holder],
    ) -> None:
        self.revision = revision
        self.previous = previous
        self.statement = statement
        self.timeout_seconds = timeout_seconds
        self.holders = holders
        super().__init__(self.explain())

    def explain(self) -> str:
        statement = " ".join(self.statement.split())
        lines = [
            f"Migration {self.revision} waited more than {self.timeout_seconds:g} s for a lock "
            f"and was rolled back; the database stays at {self.previous or 'no revision'}. "
            f"The statement that waited: {statement[:200]}",
            *(f"  {holder.describe()}" for holder in self.holders),
            "Run `conduit migrate` again once they have finished (or end them with "
            "pg_terminate_backend(pid)); CONDUIT_DB_MIGRATE_LOCK_TIMEOUT_SECONDS sets the wait.",
        ]
        return "\n".join(lines)


# The sessions holding a lock on a table the statement names (a cheap guess at what it waited
# for: PostgreSQL's error does not say which lock, and the wait is over when it is raised).
_HOLDERS = text(
    """
    SELECT l.pid, c.relname, l.mode, a.application_name, a.state,
           extract(epoch FROM now() - a.xact_start), left(a.query, 200)
    FROM pg_locks l
    JOIN pg_class c ON c.oid = l.relation
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.granted AND l.pid <> pg_backend_pid() AND pg_table_is_visible(c.oid)
      AND c.relkind IN ('r', 'p') AND :statement ~* ('\\m' || c.relname || '\\M')
    ORDER BY a.xact_start, l.pid
    """
)


async def _holders(connection: AsyncConnection, statement: str) -> list[Holder]:
    rows = await connection.execute(_HOLDERS, {"statement": statement})
    return [
        Holder(
            pid=pid,
            table=table,
            mode=mode,
            application=application or "",
            state=state or "unknown",
            transaction_seconds=None if seconds is None else float(seconds),
            query=query or "",
        )
        for pid, table, mode, application, state, seconds, query in rows
    ]


def _lock_not_available(error: exc.DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE


def _pending(connection: Connection, target: str) -> tuple[str | None, list[Script]]:
    """The revision the database is at, and those from it up to `target`, oldest first."""
    current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory.from_config(alembic_config())
    return current, list(reversed(list(scripts.iterate_revisions(target, current))))


def _apply(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def upgrade(
    engine: AsyncEngine, revision: str = "head", *, lock_timeout_seconds: float | None = None
) -> None:
    """Apply the revisions up to `revision`, each in a transaction of its own, logging each.
    `lock_timeout_seconds` applies on PostgreSQL; SQLite's wait is its busy timeout."""
    lock_timeout = lock_timeout_seconds if engine.dialect.name == "postgresql" else None
    async with engine.connect() as connection:
        current, pending = await connection.run_sync(_pending, revision)
    for script in pending:
        description = " ".join(script.doc.split())
        logger.info(
            "migration_started", extra={"revision": script.revision, "description": description}
        )
        started = time.monotonic()
        try:
            async with engine.begin() as connection:
                if lock_timeout is not None:
                    milliseconds = max(1, round(lock_timeout * 1000))
                    await connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                await connection.run_sync(_apply, script.revision)
        except exc.DBAPIError as error:
            if lock_timeout is None or not _lock_not_available(error):
                raise
            statement = error.statement or ""
            async with engine.connect() as connection:
                holders = await _holders(connection, statement)
            raise LockTimeout(
                revision=script.revision,
                previous=current,
                statement=statement,
                timeout_seconds=lock_timeout,
                holders=holders,
            ) from None
        logger.info(
            "migration_applied",
            extra={"revision": script.revision, "seconds": round(time.monotonic() - started, 3)},
        )
        current = script.revision


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(
            lambda sync_connection: command.downgrade(alembic_config(sync_connection), revision)
        )
