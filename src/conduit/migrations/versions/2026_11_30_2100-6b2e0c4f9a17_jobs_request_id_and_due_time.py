"""Jobs remember the request that enqueued them (its `X-Request-ID`, bound to the job's log
lines) and when they were first due (the queue latency metric).

Revision ID: 6b2e0c4f9a17
Revises: d3591788001f
Create Date: 2026-11-30 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6b2e0c4f9a17"
down_revision: str | None = "d3591788001f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("due_at")
        batch.drop_column("request_id")
