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

# How PostgreSQL ends a revision's wait for a lock, by SQLSTATE: the lock timeout ran out
# (lock_not_available), or the wait closed a cycle with other sessions' waits and this revision
# was chosen to end it (deadlock_detected).
_GAVE_UP_WAITING = {
    "55P03": "waited more than {timeout:g} s for a lock",
    "40P01": "deadlocked with another session",
}


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


class LockNotAcquired(Exception):
    """A revision gave up waiting for a lock (the lock timeout, or a deadlock), and was rolled
    back."""

    def __init__(
        self,
        *,
        revision: str,
        previous: str | None,
        statement: str,
        reason: str,
        holders: list[Holder],
    ) -> None:
        self.revision = revision
        self.previous = previous
        self.statement = statement
        self.reason = reason
        self.holders = holders
        super().__init__(self.explain())

    def explain(self) -> str:
        statement = " ".join(self.statement.split())
        lines = [
            f"Migration {self.revision} {self.reason} and was rolled back; the database stays "
            f"at {self.previous or 'no revision'}. The statement that waited: {statement[:200]}",
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


def _gave_up_waiting(error: exc.DBAPIError, timeout_seconds: float) -> str | None:
    reason = _GAVE_UP_WAITING.get(getattr(error.orig, "sqlstate", None) or "")
    return None if reason is None else reason.format(timeout=timeout_seconds)


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
            reason = None if lock_timeout is None else _gave_up_waiting(error, lock_timeout)
            if reason is None:
                raise
            statement = error.statement or ""
            async with engine.connect() as connection:
                holders = await _holders(connection, statement)
            raise LockNotAcquired(
                revision=script.revision,
                previous=current,
                statement=statement,
                reason=reason,
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
