from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

_COUNTED = ("select", "insert", "update", "delete", "with")


@dataclass
class StatementRecorder:
    """The SQL statements an engine runs, savepoints and transaction control left out."""

    statements: list[str] = field(default_factory=list)

    def _record(self, *args: Any) -> None:
        statement: str = args[2]
        if statement.lstrip().lower().startswith(_COUNTED):
            self.statements.append(statement)

    @classmethod
    @contextmanager
    def listening(cls, engine: AsyncEngine) -> Iterator["StatementRecorder"]:
        recorder = cls()
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
