"""The database: engine and write sessions, the read path, and the unit of work (the one place
that commits).

Writes go through SQLAlchemy's `AsyncSession`, one transaction per request (`Session`). Reads go
through a `Reader` (`ReadSession`): each read is a statement SQLAlchemy builds and compiles once
per dialect (`Read`), then runs on the driver itself, which on PostgreSQL means asyncpg's
prepared-statement cache on a pool of connections of its own. SQLAlchemy's execution layer cost
more than the statements themselves (docs/benchmarks.md).

The modules, by what they hold: the tables' base (`base`), the read path (`read_path`), what
to say when the database is at fault (`outage`), the engine and the process's clients
(`engine`), the schema's revision (`schema`), and the unit of work (`transactions`).
"""

from conduit.database.base import Base, UTCDateTime, utcnow
from conduit.database.engine import Database, connect, create_engine, create_sessions
from conduit.database.outage import (
    UNAVAILABLE,
    Unavailable,
    explain,
    report_unavailable,
    unavailable,
)
from conduit.database.read_path import (
    AsyncpgReader,
    Read,
    Reader,
    SessionReader,
    SQLiteReader,
    aggregate,
)
from conduit.database.schema import (
    SCHEMA_REVISION,
    Schema,
    read_schema_revision,
    schema_revision,
    schema_standing,
)
from conduit.database.transactions import (
    NotGiven,
    ReadSession,
    Session,
    after_commit,
    follow_writes_of,
    insert,
    read_session,
    state_of,
    transaction,
    unit_of_work,
)

__all__ = [
    "SCHEMA_REVISION",
    "UNAVAILABLE",
    "AsyncpgReader",
    "Base",
    "Database",
    "NotGiven",
    "Read",
    "ReadSession",
    "Reader",
    "SQLiteReader",
    "Schema",
    "Session",
    "SessionReader",
    "UTCDateTime",
    "Unavailable",
    "after_commit",
    "aggregate",
    "connect",
    "create_engine",
    "create_sessions",
    "explain",
    "follow_writes_of",
    "insert",
    "read_schema_revision",
    "read_session",
    "report_unavailable",
    "schema_revision",
    "schema_standing",
    "state_of",
    "transaction",
    "unavailable",
    "unit_of_work",
    "utcnow",
]
