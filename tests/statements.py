import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit.database import Read, Reader

T = TypeVar("T")

_COUNTED = ("select", "insert", "update", "delete", "with")


@dataclass
class StatementRecorder:
    """The SQL statements an engine runs, savepoints and transaction control left out."""

    engine: AsyncEngine
    statements: list[str] = field(default_factory=list)

    def _record(self, *args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().lower().startswith(_COUNTED):
            self.statements.append(statement)

    @classmethod
    @contextmanager
    def listening(cls, engine: AsyncEngine) -> Iterator["StatementRecorder"]:
        recorder = cls(engine)
        event.listen(engine.sync_engine, "before_cursor_execute", recorder._record)
        try:
            yield recorder
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", recorder._record)

    def clear(self) -> None:
        self.statements.clear()

    @property
    def count(self) -> int:
        return len(self.statements)


class RecordingReader:
    """A reader that records each statement it runs, as the engine's listener records the
    statements that go through SQLAlchemy.

    Its reader is the test's one connection, where production's has a pool: concurrent reads
    (requests sent at once, each missing the cache) take turns on it, as they would take
    connections of their own, instead of meeting on it (asyncpg: "another operation is in
    progress")."""

    def __init__(self, reader: Reader, recorder: StatementRecorder) -> None:
        self._reader = reader
        self._recorder = recorder
        self._turn = asyncio.Lock()

    async def scalar(self, read: Read[T], /, **params: object) -> T | None:
        self._recorder.statements.append(read.compiled(self._recorder.engine.dialect).sql)
        async with self._turn:
            return await self._reader.scalar(read, **params)
