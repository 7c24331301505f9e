"""SQL expressions that build JSON inside the database, on PostgreSQL and SQLite alike.

The hot read endpoints hand the database's JSON to the client as it is, with no ORM objects, no
Pydantic models and no serialisation in Python between them (docs/benchmarks.md has the numbers).
Each construct below renders the equivalent functions of each backend:

- `json_object(key=value, ...)`: PostgreSQL `json_build_object`, SQLite `json_object`.
- `json_array_agg(x, *order_by)`: PostgreSQL `coalesce(json_agg(x ORDER BY ...), '[]')`;
  SQLite `json_group_array(x)`, whose aggregates take no ORDER BY before 3.44, so it must
  aggregate an already ordered subquery.
- `json_document(x)`: a JSON document read back from a subquery column; SQLite forgets that such
  a value is JSON (it would nest it as a string) unless it is wrapped in `json(x)`.
- `json_bool(condition)`: the boolean itself on PostgreSQL; on SQLite, whose booleans are 0 and
  1, `json('true')` or `json('false')`.
- `iso_timestamp(column)`: `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, with `to_char` or `strftime`.
"""

from typing import Any

from sqlalchemy import Cast, SQLColumnExpression, String, Text, cast, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseList
from sqlalchemy.sql.functions import FunctionElement


class json_object(FunctionElement[str]):  # noqa: N801 - named like the SQL function it renders
    type = String()
    inherit_cache = True

    def __init__(self, **fields: SQLColumnExpression[Any]) -> None:
        # Keys are identifiers from our own code, rendered inline: PostgreSQL cannot infer the
        # type of a bound parameter passed to json_build_object.
        arguments = [
            part for key, value in fields.items() for part in (literal_column(f"'{key}'"), value)
        ]
        super().__init__(*arguments)


class json_array_agg(FunctionElement[str]):  # noqa: N801 - named like a SQL aggregate
    type = String()
    inherit_cache = True

    def __init__(
        self, value: SQLColumnExpression[Any], *order_by: SQLColumnExpression[Any]
    ) -> None:
        super().__init__(value)
        self.order_by = ClauseList(*order_by)


class json_document(FunctionElement[str]):  # noqa: N801 - named like the SQL expressions it renders
    type = String()
    inherit_cache = True


class json_bool(FunctionElement[bool]):  # noqa: N801 - named like the SQL expressions it renders
    inherit_cache = True


class iso_timestamp(FunctionElement[str]):  # noqa: N801 - named like the SQL expressions it renders
    type = String()
    inherit_cache = True


def as_text(document: SQLColumnExpression[str]) -> Cast[str]:
    """The document as JSON text, to send as it is: asyncpg would parse a `json` value."""
    return cast(document, Text)


@compiles(json_object, "postgresql")
def _json_object_postgresql(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "sqlite")
def _json_object_sqlite(element: json_object, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_array_agg, "postgresql")
def _json_array_agg_postgresql(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    value = compiler.process(element.clauses, **kw)
    order_by = compiler.process(element.order_by, **kw)
    ordering = f" ORDER BY {order_by}" if order_by else ""
    return f"coalesce(json_agg({value}{ordering}), '[]'::json)"


@compiles(json_array_agg, "sqlite")
def _json_array_agg_sqlite(element: json_array_agg, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array({compiler.process(element.clauses, **kw)})"


@compiles(json_document, "postgresql")
def _json_document_postgresql(element: json_document, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_document, "sqlite")
def _json_document_sqlite(element: json_document, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json({compiler.process(element.clauses, **kw)})"


@compiles(json_bool, "postgresql")
def _json_bool_postgresql(element: json_bool, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_bool, "sqlite")
def _json_bool_sqlite(element: json_bool, compiler: SQLCompiler, **kw: Any) -> str:
    condition = compiler.process(element.clauses, **kw)
    return f"CASE WHEN {condition} THEN json('true') ELSE json('false') END"


@compiles(iso_timestamp, "postgresql")
def _iso_timestamp_postgresql(element: iso_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


@compiles(iso_timestamp, "sqlite")
def _iso_timestamp_sqlite(element: iso_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', {compiler.process(element.clauses, **kw)})"
