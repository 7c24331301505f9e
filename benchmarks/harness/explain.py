"""EXPLAIN (ANALYZE, BUFFERS) of the exact statements Conduit runs for the list and the feed.

Conduit runs in-process (its app factory, through httpx's ASGI transport) against the benchmark
database; its reader is wrapped to record each read's SQL with the arguments it sends the driver,
and a listener on every SQLAlchemy engine records any statement that goes through SQLAlchemy;
each is then explained on a connection of our own. Nothing is reconstructed by hand, so the plans
follow Conduit's queries as they change.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExecutionContext
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.ext.asyncio import create_async_engine

from conduit.clients import Clients
from conduit.config import AuthSettings, DatabaseSettings, Settings
from conduit.database import Database, Read, Reader
from conduit.main import create_app

T = TypeVar("T")

ENDPOINTS = {"list": "/api/articles?limit=20", "feed": "/api/articles/feed?limit=20"}
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


@dataclass(frozen=True, slots=True)
class Explained:
    endpoint: str
    label: str
    sql: str
    parameters: str
    execution_ms: float
    seq_scans: list[str]
    plan: str


def _label(statement: str) -> str:
    normalized = " ".join(statement.split()).lower()
    if normalized.startswith("select count("):
        return "count"
    if " limit " in normalized:
        return "page"
    if "article_tags" in normalized:
        return "tags"
    table = re.search(r" from (\w+)", normalized)
    return table.group(1) if table else "other"


class _RecordingReader:
    def __init__(self, reader: Reader, database: Database) -> None:
        self._reader = reader
        self._dialect = database.engine.dialect
        self.statements: list[tuple[str, Sequence[object]]] = []

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        compiled = read.compiled(self._dialect)
        self.statements.append((compiled.sql, tuple(compiled.arguments(params))))
        return await self._reader.scalar(read, **params)


async def _record(url: str, secret: str, token: str) -> list[tuple[str, str, Sequence[object]]]:
    """(endpoint, statement, parameters) for every SELECT Conduit runs for ENDPOINTS."""
    settings = Settings(
        database=DatabaseSettings(url=url), auth=AuthSettings(secret_key=SecretStr(secret))
    )
    app = create_app(settings)
    through_sqlalchemy: list[tuple[str, Sequence[object]]] = []

    def record(
        _connection: Connection,
        _cursor: DBAPICursor,
        statement: str,
        parameters: object,
        _context: ExecutionContext | None,
        _executemany: bool,
    ) -> None:
        if statement.lstrip().upper().startswith("SELECT") and isinstance(parameters, Sequence):
            through_sqlalchemy.append((statement, tuple(parameters)))

    recorded = []
    event.listen(Engine, "before_cursor_execute", record)
    try:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            connected: Clients = app.state.clients
            database = connected.database
            reader = _RecordingReader(database.reader, database)
            recording = Database(database.engine, database.sessions, reader)
            app.state.clients = replace(connected, database=recording)
            for endpoint, path in ENDPOINTS.items():
                reader.statements.clear()
                through_sqlalchemy.clear()
                response = await client.get(path, headers={"Authorization": f"Token {token}"})
                response.raise_for_status()
                statements = reader.statements + through_sqlalchemy
                recorded += [(endpoint, *statement) for statement in statements]
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return recorded


async def explain(url: str, secret: str, token: str) -> list[Explained]:
    recorded = await _record(url, secret, token)
    engine = create_async_engine(DatabaseSettings(url=url).sqlalchemy_url)
    explained = []
    try:
        async with engine.connect() as connection:
            for endpoint, statement, parameters in recorded:
                result = await connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                )
                plan = "\n".join(str(row[0]) for row in result)
                execution = _EXECUTION.search(plan)
                explained.append(
                    Explained(
                        endpoint=endpoint,
                        label=_label(statement),
                        sql=statement,
                        parameters=repr(parameters),
                        execution_ms=float(execution.group(1)) if execution else float("nan"),
                        seq_scans=sorted(set(_SEQ_SCAN.findall(plan))),
                        plan=plan,
                    )
                )
    finally:
        await engine.dispose()
    return explained
