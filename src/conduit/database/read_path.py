"""The read path: each read is a statement SQLAlchemy builds and compiles once per dialect
(`Read`), then runs on the driver itself (a `Reader`), which on PostgreSQL means asyncpg's
prepared-statement cache on a pool of connections of its own."""

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

import aiosqlite
from sqlalchemy import Dialect, Select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database.outage import CONNECTION_LOST, PoolTimeout
from conduit.sql_json import JSONFunctions, functions_for

T = TypeVar("T")
# A read of a document is a read of its text (the cache fingerprints any read).
T_co = TypeVar("T_co", covariant=True)


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

    def terminate(self) -> None: ...


class _AsyncpgPool(Protocol):
    async def acquire(self) -> _AsyncpgExecutor: ...

    async def release(self, connection: _AsyncpgExecutor) -> None: ...

    async def expire_connections(self) -> None: ...


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
    """Reads on a pool of asyncpg connections (the primary's, or a replica's).

    A replica's reads are bounded by `read_timeout` as well as by the driver's statement
    timeout: a read cut short closes its connection. Connecting is bounded by the driver's own
    timeout, never cut short from outside (asyncpg leaves a cancelled connection attempt's
    errors unretrieved).

    The pool replaces a connection it knows is closed when it hands it out, with no round trip.
    When a statement meets one that died unnoticed (a restart or failover ends them all at
    once), every pooled connection is expired and the read, being idempotent, runs once more on
    a new one. A read that waits longer than `pool_timeout` for a connection fails
    (`PoolTimeout`), as a write does.
    """

    def __init__(
        self,
        pool: _AsyncpgPool,
        dialect: Dialect,
        *,
        pool_timeout: float,
        read_timeout: float | None = None,
    ) -> None:
        self._pool = pool
        self._dialect = dialect
        self._pool_timeout = pool_timeout
        self._read_timeout = read_timeout

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        compiled = read.compiled(self._dialect)
        arguments = compiled.arguments(params)
        try:
            value = await self._fetchval(compiled.sql, arguments)
        except CONNECTION_LOST:
            await self._pool.expire_connections()
            value = await self._fetchval(compiled.sql, arguments)
        return cast("T | None", value)

    async def fetchval(self, sql: str) -> object:
        """A statement of the database's own, such as its WAL position, rather than a read."""
        return await self._fetchval(sql, [])

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
            async with asyncio.timeout(self._read_timeout):
                try:
                    return await connection.fetchval(sql, *arguments)
                except asyncio.CancelledError:
                    # Cut short (past the read timeout, or its request gone): the connection
                    # is mid-statement, and releasing it would wait on a server that may never
                    # answer.
                    connection.terminate()
                    raise
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
