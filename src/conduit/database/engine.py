"""The engine for writes, its sessions, and the process's database clients (`connect`)."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiosqlite
import asyncpg
from sqlalchemy import Dialect, event, exc
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from conduit.config import DatabaseSettings
from conduit.database.read_path import AsyncpgPoolReader, Reader, SQLiteReader
from conduit.database.schema import Schema, schema_revision, schema_standing


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout: str) -> None:
    """Foreign keys, WAL, and transactions SQLite can serialise without deadlocking.

    pysqlite's own transaction handling breaks SAVEPOINT, so it is switched off and every
    transaction starts with BEGIN IMMEDIATE: a writer takes the lock up front instead of failing
    when it upgrades a read lock another connection also holds.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA foreign_keys = ON",
            "PRAGMA journal_mode = WAL",
            "PRAGMA synchronous = NORMAL",
            f"PRAGMA busy_timeout = {busy_timeout}",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _discard_closed_connections(engine: AsyncEngine) -> None:
    """Replace a pooled connection whose socket the driver has seen close (a restarted server,
    a terminated backend) at checkout, without the round trip of a pre-ping."""

    @event.listens_for(engine.sync_engine, "checkout")
    def on_checkout(
        dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry, __: PoolProxiedConnection
    ) -> None:
        driver_connection = cast("Any", dbapi_connection).driver_connection
        if driver_connection.is_closed():
            raise exc.DisconnectionError


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


# `CONDUIT_DB_PREPARED_STATEMENTS=false`: without its cache asyncpg prepares unnamed
# statements, which live until the next one. A pooler in transaction mode may hand the next
# transaction another server connection: nothing is left there to collide with.
_NO_STATEMENT_CACHE: dict[str, object] = {"statement_cache_size": 0}


def create_engine(
    settings: DatabaseSettings, *, bounded: bool = False, direct: bool = False
) -> AsyncEngine:
    """The engine for writes. `bounded`: its statements are cancelled after the statement
    timeout, as those of requests and jobs are; migrations and seeds are not. `direct`: past
    the pooler (`DATABASE_DIRECT_URL`), for migrations."""
    if settings.is_sqlite:
        # One connection per process: SQLite has a single writer anyway, and queueing in the
        # pool is cheaper than SQLITE_BUSY retries.
        engine = create_async_engine(
            settings.sqlalchemy_url,
            echo=settings.echo,
            # Errors carry the statement, never the values: a password hash or a token is one.
            hide_parameters=True,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.pool_timeout_seconds,
        )
        _configure_sqlite(engine, busy_timeout=_milliseconds(settings.statement_timeout_seconds))
        return engine
    connect_args: dict[str, object] = {"timeout": settings.connect_timeout_seconds}
    if not settings.prepared_statements:
        # SQLAlchemy's own cache would keep an unnamed statement's description across
        # transactions: after a migration changes a column's type, its values would be
        # decoded as the old type's.
        connect_args |= {**_NO_STATEMENT_CACHE, "prepared_statement_cache_size": 0}
    if bounded:
        connect_args["command_timeout"] = settings.statement_timeout_seconds
    engine = create_async_engine(
        settings.direct_sqlalchemy_url if direct else settings.sqlalchemy_url,
        echo=settings.echo,
        hide_parameters=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        connect_args=connect_args,
    )
    _discard_closed_connections(engine)
    return engine


def create_sessions(engine: AsyncEngine | AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@dataclass(frozen=True, slots=True)
class Database:
    """The process's database clients, created and closed with the app (`connect`)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reader: Reader


async def _keep_session(_: object) -> None:
    """Reads change no session state (no SET, LISTEN or advisory locks) and run outside
    transactions, so a released connection needs none of asyncpg's reset query, a round trip
    per read. asyncpg still rolls back a transaction left open before calling this."""


@contextlib.asynccontextmanager
async def asyncpg_pool(
    dsn: str,
    settings: DatabaseSettings,
    dialect: Dialect,
    *,
    connect_timeout: float,
    read_timeout: float | None = None,
) -> AsyncIterator[AsyncpgPoolReader]:
    """A pool of connections for reads, at `dsn`: the primary's, or a replica's."""
    pool = await asyncpg.create_pool(
        dsn,
        # Connections are opened when reads need them: a server that is down at start-up fails
        # readiness (`/health/ready`), not the start.
        min_size=0,
        timeout=connect_timeout,
        max_size=settings.read_pool_size,
        command_timeout=settings.statement_timeout_seconds,
        reset=_keep_session,
        **({} if settings.prepared_statements else _NO_STATEMENT_CACHE),
    )
    try:
        yield AsyncpgPoolReader(
            pool, dialect, pool_timeout=settings.pool_timeout_seconds, read_timeout=read_timeout
        )
    finally:
        await pool.close()


def _primary_pool(
    settings: DatabaseSettings, dialect: Dialect
) -> contextlib.AbstractAsyncContextManager[AsyncpgPoolReader]:
    return asyncpg_pool(
        settings.asyncpg_dsn, settings, dialect, connect_timeout=settings.connect_timeout_seconds
    )


@contextlib.asynccontextmanager
async def _sqlite_connection(
    settings: DatabaseSettings, dialect: Dialect
) -> AsyncIterator[SQLiteReader]:
    path = Path(settings.sqlalchemy_url.database or "")
    busy_timeout = _milliseconds(settings.statement_timeout_seconds)
    async with aiosqlite.connect(path, isolation_level=None) as connection:
        for pragma in ("PRAGMA query_only = ON", f"PRAGMA busy_timeout = {busy_timeout}"):
            await connection.execute(pragma)
        yield SQLiteReader(connection, dialect)


@contextlib.asynccontextmanager
async def connect(settings: DatabaseSettings) -> AsyncIterator[Database]:
    """The engine for writes and migrations, and a reader on connections of its own. The
    embedded SQLite default migrates itself when its schema is older than this release's;
    PostgreSQL is migrated by `conduit migrate`."""
    engine = create_engine(settings, bounded=True)
    open_reader = _sqlite_connection if settings.is_sqlite else _primary_pool
    try:
        if (
            settings.is_sqlite
            and await schema_standing(await schema_revision(engine)) is Schema.OLDER
        ):
            from conduit import migrations  # noqa: PLC0415 (Alembic: 0.1 s of a start)

            await migrations.upgrade(engine)
        async with open_reader(settings, engine.dialect) as reader:
            yield Database(engine=engine, sessions=create_sessions(engine), reader=reader)
    finally:
        await engine.dispose()
