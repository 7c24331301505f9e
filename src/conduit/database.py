"""The database: engine and write sessions, the read path, and the unit of work (the one place
that commits).

Writes go through SQLAlchemy's `AsyncSession`, one transaction per request (`Session`). Reads go
through a `Reader` (`ReadSession`): each read is a statement SQLAlchemy builds and compiles once
per dialect (`Read`), then runs on the driver itself, which on PostgreSQL means asyncpg's
prepared-statement cache on a pool of read-only connections. SQLAlchemy's execution layer cost
more than the statements themselves (docs/benchmarks.md).
"""

import asyncio
import contextlib
import hashlib
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Generic, Protocol, TypeVar, cast

import aiosqlite
import asyncpg
from fastapi import Depends, Request, status
from sqlalchemy import (
    DateTime,
    Dialect,
    MetaData,
    Select,
    column,
    event,
    exc,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from conduit.config import DatabaseSettings
from conduit.errors import AppError
from conduit.sql_json import JSONFunctions, functions_for

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

logger = logging.getLogger(__name__)

T = TypeVar("T")
# A read of a document is a read of its text (the cache fingerprints any read).
T_co = TypeVar("T_co", covariant=True)


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


# The read path ----------------------------------------------------------------------------


_BY_NAME = object()


@dataclass(frozen=True, slots=True)
class CompiledRead:
    """A read's SQL for one dialect, with its parameters in the driver's positional order."""

    sql: str
    names: tuple[str, ...]
    # Per position: the value bound in the statement itself, or _BY_NAME.
    fixed: tuple[object, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    # Changes with the SQL, so with the shape of the document it builds: cached copies of its
    # documents are kept under it (`conduit.cache`).
    fingerprint: str

    @classmethod
    def of(cls, statement: Select[Any], dialect: Dialect) -> "CompiledRead":
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        sql = str(compiled)
        return cls(
            sql=sql,
            names=names,
            fixed=tuple(_BY_NAME if bind.required else bind.effective_value for bind in binds),
            processors=tuple(
                bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds
            ),
            fingerprint=hashlib.blake2b(sql.encode(), digest_size=6).hexdigest(),
        )

    def arguments(self, params: Mapping[str, object]) -> list[object]:
        values = (
            params[name] if value is _BY_NAME else value
            for name, value in zip(self.names, self.fixed, strict=True)
        )
        return [
            value if process is None or value is None else process(value)
            for value, process in zip(values, self.processors, strict=True)
        ]


class Read(Generic[T_co]):
    """A read statement returning one value of type `T` (usually a JSON document), built by
    `build` and compiled once per dialect, and run by a `Reader`.

    Everything that changes the SQL is decided when the statement is built; per-request values
    are bound parameters, so the compiled SQL (and asyncpg's prepared statement for it) is reused.
    """

    __slots__ = ("_build", "_compiled", "_statements")

    def __init__(self, build: Callable[[JSONFunctions], Select[Any]]) -> None:
        self._build = build
        self._statements: dict[str, Select[Any]] = {}
        self._compiled: dict[str, CompiledRead] = {}

    def statement(self, dialect: Dialect) -> Select[Any]:
        statement = self._statements.get(dialect.name)
        if statement is None:
            statement = self._statements[dialect.name] = self._build(functions_for(dialect.name))
        return statement

    def compiled(self, dialect: Dialect) -> CompiledRead:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = CompiledRead.of(self.statement(dialect), dialect)
            self._compiled[dialect.name] = compiled
        return compiled


class Reader(Protocol):
    """Runs reads; what endpoints that only read ask for (`ReadSession`)."""

    async def scalar(self, read: Read[T], /, **params: object) -> T | None: ...


async def aggregate(db: Reader, read: Read[T], /, **params: object) -> T:
    """Run a read whose statement aggregates without GROUP BY, so always returns its one row."""
    return cast("T", await db.scalar(read, **params))


class _AsyncpgExecutor(Protocol):
    """The part of an asyncpg connection or pool the readers use (asyncpg ships no types)."""

    async def fetchval(self, query: str, *args: object) -> Any: ...


class _AsyncpgPool(Protocol):
    async def acquire(self) -> _AsyncpgExecutor: ...

    async def release(self, connection: _AsyncpgExecutor) -> None: ...

    async def expire_connections(self) -> None: ...


# A pooled connection that died under a statement (server restart, failover, terminated backend).
_CONNECTION_LOST = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
    # A connection whose backend was terminated while it sat idle: asyncpg has read the
    # server's FATAL but not yet the closed socket, and refuses the next statement ("cannot
    # switch to state 12; another operation (2) is in progress").
    asyncpg.exceptions.InternalClientError,
)


class PoolTimeout(Exception):
    """No connection of the read pool came free within the pool timeout (the write pool's
    is SQLAlchemy's `TimeoutError`)."""


# The database, not the request, is at fault: it is down, unreachable, restarting, out of
# connections, too slow (a statement ran past the statement timeout), or a pool waited too
# long for a connection. The API answers 503 (`conduit.errors`).
UNAVAILABLE = (
    *_CONNECTION_LOST,
    OSError,
    asyncpg.exceptions.TooManyConnectionsError,
    # Refused by configuration: no such database, or the credentials are wrong.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.QueryCanceledError,
    PoolTimeout,
    exc.TimeoutError,
)


def _cause(error: BaseException) -> BaseException:
    """The driver's own error under SQLAlchemy's wrapping of it."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        return error.orig.__cause__ or error.orig
    return error


def _sqlite_locked(error: BaseException) -> bool:
    """SQLite's busy timeout ran out: another connection held the lock all along."""
    return isinstance(error, sqlite3.OperationalError) and error.sqlite_errorcode & 0xFF in {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
    }


def unavailable(error: BaseException) -> bool:
    """Whether `error` says the database is unavailable, as a driver raised it or SQLAlchemy
    (which wraps the driver's errors)."""
    invalidated = isinstance(error, exc.DBAPIError) and error.connection_invalidated
    cause = _cause(error)
    return invalidated or isinstance(cause, UNAVAILABLE) or _sqlite_locked(cause)


class Unavailable(AppError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    message = "is unavailable, retry shortly"
    headers = MappingProxyType({"Retry-After": "5"})


# While the database is down every request fails the same way: one line per interval says so.
REPORT_INTERVAL_SECONDS = 10.0


@dataclass
class _Reports:
    last: float = -REPORT_INTERVAL_SECONDS
    suppressed: int = 0

    def report(self, settings: DatabaseSettings, error: BaseException) -> None:
        now = time.monotonic()
        if now - self.last < REPORT_INTERVAL_SECONDS:
            self.suppressed += 1
            return
        logger.warning(
            "database_unavailable: %s",
            explain(settings, error),
            extra={"error": type(_cause(error)).__name__, "since_last_report": self.suppressed},
        )
        self.last, self.suppressed = now, 0


report_unavailable = _Reports().report


_EXPLANATIONS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (
        asyncpg.exceptions.InvalidCatalogNameError,
        'database "{name}" does not exist on {where}: create it, or fix DATABASE_URL',
    ),
    (
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        "{where} refused user {user!r}: check the user and password in DATABASE_URL",
    ),
    (ConnectionRefusedError, "connection refused by {where}: is PostgreSQL running there?"),
    (socket.gaierror, "cannot resolve the host {host!r} of DATABASE_URL"),
    (
        TimeoutError,
        "no connection to {where} within {connect_timeout:g} s: is it reachable from here (a "
        "firewall, another network), or overloaded?",
    ),
    (
        asyncpg.exceptions.QueryCanceledError,
        "{where} cancelled a statement ({cause}; the statement timeout is "
        "{statement_timeout:g} s): the database is slow, or a lock holds statements up",
    ),
)


def _pool_exhausted(settings: DatabaseSettings, cause: BaseException) -> str | None:
    if isinstance(cause, PoolTimeout):
        pool = "read"
    elif isinstance(cause, exc.TimeoutError):
        pool = "write"
    else:
        return None
    return (
        f"no connection of the {pool} pool came free within {settings.pool_timeout_seconds:g} "
        "s: the database is slow, or the pool is too small for the load"
    )


def explain(settings: DatabaseSettings, error: BaseException) -> str:
    """What went wrong with the database, in one line an operator can act on, without the
    password."""
    url = settings.sqlalchemy_url
    cause = _cause(error)
    exhausted = _pool_exhausted(settings, cause)
    if exhausted is not None:
        return exhausted
    if settings.is_sqlite:
        if _sqlite_locked(cause):
            return (
                f"the SQLite database {url.database} stayed locked by another connection for "
                f"{settings.statement_timeout_seconds:g} s"
            )
        return f"cannot open the SQLite database {url.database}: {cause}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    for kind, template in _EXPLANATIONS:
        if isinstance(cause, kind):
            return template.format(
                name=url.database,
                where=where,
                user=url.username,
                host=url.host,
                connect_timeout=settings.connect_timeout_seconds,
                statement_timeout=settings.statement_timeout_seconds,
                cause=cause,
            )
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else cause
    return f"database at {where} unavailable: {reason}"


class AsyncpgReader:
    """Reads on one asyncpg connection: in tests, the test's own, inside its transaction."""

    def __init__(self, executor: _AsyncpgExecutor, dialect: Dialect) -> None:
        self._executor = executor
        self._dialect = dialect

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        compiled = read.compiled(self._dialect)
        value = await self._executor.fetchval(compiled.sql, *compiled.arguments(params))
        return cast("T | None", value)


class AsyncpgPoolReader:
    """Reads on a pool of read-only asyncpg connections.

    The pool replaces a connection it knows is closed when it hands it out, with no round trip.
    When a statement meets one that died unnoticed (a restart or failover ends them all at
    once), every pooled connection is expired and the read, being idempotent, runs once more on
    a new one. A read that waits longer than `pool_timeout` for a connection fails
    (`PoolTimeout`), as a write does.
    """

    def __init__(self, pool: _AsyncpgPool, dialect: Dialect, *, pool_timeout: float) -> None:
        self._pool = pool
        self._dialect = dialect
        self._pool_timeout = pool_timeout

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        compiled = read.compiled(self._dialect)
        arguments = compiled.arguments(params)
        try:
            value = await self._fetchval(compiled.sql, arguments)
        except _CONNECTION_LOST:
            await self._pool.expire_connections()
            value = await self._fetchval(compiled.sql, arguments)
        return cast("T | None", value)

    async def _fetchval(self, sql: str, arguments: list[object]) -> object:
        waiting = asyncio.timeout(self._pool_timeout)
        try:
            async with waiting:
                connection = await self._pool.acquire()
        except TimeoutError as error:
            # Connecting has a timeout of its own: only the wait for a free connection is ours.
            if waiting.expired():
                raise PoolTimeout from error
            raise
        try:
            return await connection.fetchval(sql, *arguments)
        finally:
            await self._pool.release(connection)


class SQLiteReader:
    """Reads on an aiosqlite connection of their own (or, in tests, the test's connection)."""

    def __init__(self, connection: aiosqlite.Connection, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        compiled = read.compiled(self._dialect)
        rows = list(
            await self._connection.execute_fetchall(compiled.sql, compiled.arguments(params))
        )
        return cast("T | None", rows[0][0]) if rows else None


class SessionReader:
    """Reads inside a write transaction, seeing its uncommitted writes: how a write endpoint
    renders what it has just changed, with the same statements as the read endpoints."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        statement = read.statement(self._session.get_bind().dialect)
        return cast("T | None", await self._session.scalar(statement, params))


# Engine, sessions and the process-wide clients -------------------------------------------


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


def create_engine(settings: DatabaseSettings, *, bounded: bool = False) -> AsyncEngine:
    """The engine for writes. `bounded`: its statements are cancelled after the statement
    timeout, as those of requests and jobs are; migrations and seeds are not."""
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
    if bounded:
        timeout = _milliseconds(settings.statement_timeout_seconds)
        connect_args["server_settings"] = {"statement_timeout": timeout}
    engine = create_async_engine(
        settings.sqlalchemy_url,
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
async def _asyncpg_pool(
    settings: DatabaseSettings, dialect: Dialect
) -> AsyncIterator[AsyncpgPoolReader]:
    pool = await asyncpg.create_pool(
        settings.asyncpg_dsn,
        # Connections are opened when reads need them: a server that is down at start-up fails
        # readiness (`/health/ready`), not the start.
        min_size=0,
        timeout=settings.connect_timeout_seconds,
        max_size=settings.read_pool_size,
        server_settings={
            # The server refuses any write on these connections: the read path is read-only
            # by construction, not by convention.
            "default_transaction_read_only": "on",
            "statement_timeout": _milliseconds(settings.statement_timeout_seconds),
        },
        reset=_keep_session,
    )
    try:
        yield AsyncpgPoolReader(pool, dialect, pool_timeout=settings.pool_timeout_seconds)
    finally:
        await pool.close()


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


@contextlib.asynccontextmanager
async def connect(settings: DatabaseSettings) -> AsyncIterator[Database]:
    """The engine for writes and migrations, and a reader on connections of its own. The
    embedded SQLite default migrates itself when its schema is older than this release's;
    PostgreSQL is migrated by `conduit migrate`."""
    engine = create_engine(settings, bounded=True)
    open_reader = _sqlite_connection if settings.is_sqlite else _asyncpg_pool
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


# The unit of work --------------------------------------------------------------------------


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "conduit.after_commit"


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's unit of work has committed, before its response is sent;
    never if it rolls back. How work for later (cache invalidation) leaves the process only
    with the writes it follows from."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


async def _commit(session: AsyncSession) -> None:
    await session.commit()
    hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for hook in hooks:
        await hook()


@contextlib.asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], info: Mapping[str, object] | None = None
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back if anything raised (except
    an `AppError` that `keeps_changes`). `info` goes into the session's `info` (the process's
    cache and job queue, for the services to use: `CACHE`, `JOBS`)."""
    async with sessions() as session:
        session.info.update(info or {})
        try:
            yield session
        except AppError as error:
            if error.keeps_changes:
                await _commit(session)
            raise
        await _commit(session)


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


# Where a unit of work's session keeps the process's read cache, which invalidates what the
# services say they changed (`conduit.cache.changed`) once the unit of work commits.
CACHE = "conduit.cache"
# And the process's job queue, which records the jobs the services enqueue in the same
# transaction (`conduit.jobs.enqueue`).
JOBS = "conduit.jobs"


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, before the response is
    sent, and rolled back if anything raised."""
    state = request.app.state
    info = {CACHE: state.cache, JOBS: state.queue}
    async with transaction(database_of(request).sessions, info) as session:
        yield session


async def read_session(request: Request) -> Reader:
    return database_of(request).reader


Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
ReadSession = Annotated[Reader, Depends(read_session)]


def insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports `ON CONFLICT DO NOTHING` on the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
