"""Article totals kept by the database: triggers on articles, so no write path, cascade (deleting
a user deletes their articles) or manual change can make the count drift.

Revision ID: 3c1f9b7d2e84
Revises: aeed356977a1
Create Date: 2026-11-30 07:25:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3c1f9b7d2e84"
down_revision: str | None = "aeed356977a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: statement-level triggers with transition tables, so a COPY or a cascade that
# touches many articles updates the total row once per statement.
_POSTGRESQL = [
    """
    CREATE FUNCTION article_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE article_totals SET count = count + (SELECT count(*) FROM changed);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION article_totals_subtract() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE article_totals SET count = count - (SELECT count(*) FROM changed);
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER articles_inserted AFTER INSERT ON articles
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION article_totals_add()
    """,
    """
    CREATE TRIGGER articles_deleted AFTER DELETE ON articles
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION article_totals_subtract()
    """,
]
# SQLite has row-level triggers only; cascades fire them too.
_SQLITE = [
    """
    CREATE TRIGGER articles_inserted AFTER INSERT ON articles
    BEGIN UPDATE article_totals SET count = count + 1; END
    """,
    """
    CREATE TRIGGER articles_deleted AFTER DELETE ON articles
    BEGIN UPDATE article_totals SET count = count - 1; END
    """,
]


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    for statement in _SQLITE if _is_sqlite() else _POSTGRESQL:
        op.execute(statement)
    op.execute("UPDATE article_totals SET count = (SELECT count(*) FROM articles)")


def downgrade() -> None:
    on_table = "" if _is_sqlite() else " ON articles"
    op.execute(f"DROP TRIGGER articles_deleted{on_table}")
    op.execute(f"DROP TRIGGER articles_inserted{on_table}")
    if not _is_sqlite():
        op.execute("DROP FUNCTION article_totals_subtract()")
        op.execute("DROP FUNCTION article_totals_add()")
