"""JSON built inside the database, in each backend's own functions.

The read endpoints hand the database's JSON to the client as it is, with no ORM objects, no
Pydantic models and no serialisation in Python between them (docs/benchmarks.md has the numbers).
Statements are built once per dialect (`conduit.database.Read`), so each backend gets plain
SQLAlchemy constructs for its own functions rather than home-made `@compiles` classes:

- `object(key=value)`: PostgreSQL `json_build_object`, SQLite `json_object`.
- `array(value, from_=..., order_by=...)`: PostgreSQL `json_agg(value ORDER BY ...)`; SQLite
  `json_group_array(value) OVER (ORDER BY ... ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED
  FOLLOWING)`, first row.
- `document(value)`: the value on PostgreSQL; SQLite forgets that a subquery's column is JSON
  unless it is wrapped in `json(value)`.
- `boolean(condition)`: the boolean on PostgreSQL; on SQLite, whose booleans are 0 and 1,
  `json('true')` or `json('false')`.
- `timestamp(column)`: `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC, with `to_char` or `strftime`.
- `elements(array)`: the strings of a JSON array parameter as rows of `value`: PostgreSQL
  `json_array_elements_text`, SQLite `json_each`.

SQLite before 3.44 has no `ORDER BY` inside an aggregate, and the order in which a plain
aggregate sees the rows of an ordered subquery is not documented; a window's `ORDER BY` is what
orders the rows its frame feeds the aggregate, so the SQLite array is a whole-partition window.
"""

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BindParameter,
    Case,
    ColumnElement,
    FromClause,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    Text,
    case,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)

Expression = SQLColumnExpression[Any]


def _pairs(fields: dict[str, Expression]) -> list[Expression]:
    """`key, value, key, value, ...`. Keys come from our own code and are rendered inline:
    PostgreSQL cannot infer the type of a bound parameter passed to json_build_object."""
    return [part for key, value in fields.items() for part in (literal_column(f"'{key}'"), value)]


class JSONFunctions(Protocol):
    def object(self, **fields: Expression) -> ColumnElement[str]: ...

    def array(
        self, value: Expression, *, from_: FromClause, order_by: Sequence[Expression]
    ) -> ColumnElement[str]:
        """The JSON array of `value` over the rows of `from_`, in `order_by` order; `[]` when
        there are none."""
        ...

    def document(self, value: Expression) -> ColumnElement[str]: ...

    def boolean(self, condition: ColumnElement[bool]) -> ColumnElement[Any]: ...

    def timestamp(self, column: Expression) -> ColumnElement[str]: ...

    def elements(self, array: BindParameter[str]) -> Select[tuple[str]]: ...


class PostgreSQLJSON:
    def object(self, **fields: Expression) -> ColumnElement[str]:
        return func.json_build_object(*_pairs(fields), type_=Text)

    def array(
        self, value: Expression, *, from_: FromClause, order_by: Sequence[Expression]
    ) -> ScalarSelect[str]:
        aggregate = func.json_agg(value).aggregate_order_by(*order_by)
        return (
            select(func.coalesce(aggregate, literal_column("'[]'::json"), type_=Text))
            .select_from(from_)
            .scalar_subquery()
        )

    def document(self, value: Expression) -> ColumnElement[str]:
        return type_coerce(value, Text)

    def boolean(self, condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return condition.self_group()

    def timestamp(self, column: Expression) -> ColumnElement[str]:
        utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
        return func.to_char(utc, literal_column("""'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"""), type_=Text)

    def elements(self, array: BindParameter[str]) -> Select[tuple[str]]:
        rows = func.json_array_elements_text(cast(array, JSON)).table_valued("value")
        return select(rows.c.value)


class SQLiteJSON:
    def object(self, **fields: Expression) -> ColumnElement[str]:
        return func.json_object(*_pairs(fields), type_=Text)

    def array(
        self, value: Expression, *, from_: FromClause, order_by: Sequence[Expression]
    ) -> ColumnElement[str]:
        whole_partition = func.json_group_array(value).over(order_by=order_by, rows=(None, None))
        first_row = select(whole_partition).select_from(from_).limit(1).scalar_subquery()
        return func.coalesce(first_row, func.json(literal_column("'[]'")), type_=Text)

    def document(self, value: Expression) -> ColumnElement[str]:
        return func.json(value, type_=Text)

    def boolean(self, condition: ColumnElement[bool]) -> Case[Any]:
        return case(
            (condition, func.json(literal_column("'true'"))),
            else_=func.json(literal_column("'false'")),
        )

    def timestamp(self, column: Expression) -> ColumnElement[str]:
        return func.strftime(literal_column("'%Y-%m-%dT%H:%M:%fZ'"), column, type_=Text)

    def elements(self, array: BindParameter[str]) -> Select[tuple[str]]:
        rows = func.json_each(array).table_valued("value")
        return select(rows.c.value)


def functions_for(dialect_name: str) -> JSONFunctions:
    return SQLiteJSON() if dialect_name == "sqlite" else PostgreSQLJSON()


def as_text(document: Expression) -> ColumnElement[str]:
    """The document as JSON text, to send as it is."""
    return cast(document, Text)
