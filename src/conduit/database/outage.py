"""Whether the database, not the request, is at fault (`unavailable`), what to tell an operator
about it (`explain`), and how often (`report_unavailable`)."""

import logging
import socket
import sqlite3
import time
from dataclasses import dataclass
from types import MappingProxyType

import asyncpg
from fastapi import status
from sqlalchemy import exc

from conduit.config import DatabaseSettings
from conduit.errors import AppError

# The package's name, as before its split into modules: operators may filter lines by it.
logger = logging.getLogger("conduit.database")


# A pooled connection that died under a statement (server restart, failover, terminated backend).
CONNECTION_LOST = (
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


# Prepared statements lost or mixed up between clients: named prepared statements behind a
# pooler in transaction mode that does not carry them (`CONDUIT_DB_PREPARED_STATEMENTS`).
PREPARED_STATEMENTS_LOST = (
    asyncpg.exceptions.DuplicatePreparedStatementError,
    asyncpg.exceptions.InvalidSQLStatementNameError,
    # "bind message supplies 2 parameters, but prepared statement ... requires 1"
    asyncpg.exceptions.ProtocolViolationError,
)


class PoolTimeout(Exception):
    """No connection of the read pool came free within the pool timeout (the write pool's
    is SQLAlchemy's `TimeoutError`)."""


# The database, not the request, is at fault: it is down, unreachable, restarting, out of
# connections, too slow (a statement ran past the statement timeout), or a pool waited too
# long for a connection. The API answers 503 (`conduit.errors`).
UNAVAILABLE = (
    *CONNECTION_LOST,
    OSError,
    asyncpg.exceptions.TooManyConnectionsError,
    # Refused by configuration: no such database, or the credentials are wrong.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.QueryCanceledError,
    *PREPARED_STATEMENTS_LOST,
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
    (
        PREPARED_STATEMENTS_LOST,
        "{where} does not know a prepared statement, or refused what the driver sent "
        "({cause}): behind a pooler in transaction mode that does not carry prepared "
        "statements (PgBouncer before 1.21), set CONDUIT_DB_PREPARED_STATEMENTS=false",
    ),
    (socket.gaierror, "cannot resolve the host {host!r} of DATABASE_URL"),
    (
        TimeoutError,
        "no answer from {where} within {connect_timeout:g} s to connect or "
        "{statement_timeout:g} s for a statement: is it reachable from here (a firewall, "
        "another network), overloaded, or is a lock holding statements up?",
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
