"""Engine, sessions and the unit of work: the one place that commits."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Dialect, MetaData, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from conduit.config import DatabaseSettings
from conduit.errors import AppError

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, truncated to the millisecond precision the API shows."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _configure_sqlite(engine: AsyncEngine) -> None:
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
            "PRAGMA busy_timeout = 10000",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    if settings.is_sqlite:
        # One connection per process: SQLite has a single writer anyway, and queueing in the
        # pool is cheaper than SQLITE_BUSY retries.
        engine = create_async_engine(
            settings.sqlalchemy_url,
            echo=settings.echo,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.pool_timeout_seconds,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        settings.sqlalchemy_url,
        echo=settings.echo,
        pool_pre_ping=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class Sessions:
    """Where a request's session comes from: `reads` for GET, HEAD and OPTIONS, `writes` for
    everything else."""

    reads: async_sessionmaker[AsyncSession]
    writes: async_sessionmaker[AsyncSession]


def create_sessions(engine: AsyncEngine) -> Sessions:
    """On PostgreSQL, reads run in autocommit: no BEGIN and COMMIT around a request that only
    reads (and each of its statements sees committed data). SQLite keeps one path, since every
    transaction there is serialised anyway."""
    writes = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    if engine.dialect.name == "sqlite":
        return Sessions(reads=writes, writes=writes)
    reads = async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )
    return Sessions(reads=reads, writes=writes)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request: committed when the endpoint returns, before the response
    is sent, and rolled back if anything raised."""
    sessions: Sessions = request.app.state.sessions
    sessionmaker = sessions.reads if request.method in _SAFE_METHODS else sessions.writes
    async with sessionmaker() as session:
        try:
            yield session
        except AppError as error:
            if error.keeps_changes:
                await session.commit()
            raise
        await session.commit()


Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]


def insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports `ON CONFLICT DO NOTHING` on the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
