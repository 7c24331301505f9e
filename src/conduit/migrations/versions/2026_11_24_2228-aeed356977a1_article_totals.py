"""Article totals: the unfiltered articlesCount as one row, kept by the writes.

Revision ID: aeed356977a1
Revises: 4565607ef887
Create Date: 2026-11-24 22:28:31.451900
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "aeed356977a1"
down_revision: str | None = "4565607ef887"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "article_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_article_totals_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_article_totals")),
    )
    op.execute("INSERT INTO article_totals (id, count) SELECT 1, count(*) FROM articles")


def downgrade() -> None:
    op.drop_table("article_totals")
