"""Security round two (issue 20): API keys revoked with the credentials that minted them, when a
session last proved the password, usernames unique ignoring case, notifications a follow causes
once a day, and the QStash messages already run.

Usernames that differ only by case (`alice` beside `ALICE`) cannot keep both: the oldest
account keeps its name and every later one is renamed `<name>-<id>`, each rename printed on
standard error, so that the operator can tell its owner.

`auth_sessions.authenticated_at` defaults to the time of the insert, so that the previous
release, which does not know the column, can still sign people in while a rolling deploy
replaces it. On SQLite, changing a column rebuilds `auth_sessions`, and dropping the old table
deletes every refresh token by cascade: they are put aside and back.

Revision ID: 9c4e2a7b51d3
Revises: 6b2e0c4f9a17
Create Date: 2026-12-07 16:30:00
"""

import contextlib
import sys
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9c4e2a7b51d3"
down_revision: str | None = "6b2e0c4f9a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_USERNAME_LENGTH = 50


def _rename_case_clashes() -> None:
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String))
    connection = op.get_bind()
    rows = list(connection.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)))
    # Every name as it stands is taken, so that a rename cannot land on a later user's name.
    kept: dict[str, int] = {}
    for user_id, username in rows:
        kept.setdefault(username.lower(), user_id)
    taken = set(kept)
    renames: list[tuple[int, str, str]] = []
    for user_id, username in rows:
        if kept[username.lower()] == user_id:
            continue
        renamed, attempt = username, 1
        while renamed.lower() in taken:
            suffix = f"-{user_id}" if attempt == 1 else f"-{user_id}-{attempt}"
            renamed = username[: _USERNAME_LENGTH - len(suffix)] + suffix
            attempt += 1
        taken.add(renamed.lower())
        renames.append((user_id, username, renamed))
    for user_id, username, renamed in renames:
        connection.execute(users.update().where(users.c.id == user_id).values(username=renamed))
        sys.stderr.write(
            f"users: {username!r} (id {user_id}) differs from an older username only by case; "
            f"renamed {renamed!r}\n"
        )


@contextlib.contextmanager
def _refresh_tokens_kept() -> Iterator[None]:
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    op.execute("CREATE TEMPORARY TABLE kept_refresh_tokens AS SELECT * FROM refresh_tokens")
    yield
    op.execute("INSERT INTO refresh_tokens SELECT * FROM kept_refresh_tokens")
    op.execute("DROP TABLE kept_refresh_tokens")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The index on lower(username) below needs `users` in SHARE mode. Taken there, it waited
        # for a registration of the running release, which writes `users` and then
        # `auth_sessions`, and waited for this revision's lock on `auth_sessions`: a deadlock.
        # Taken first, this revision waits for such registrations instead.
        op.execute("LOCK TABLE users IN SHARE MODE")
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE auth_sessions SET authenticated_at = created_at")
    with _refresh_tokens_kept(), op.batch_alter_table("auth_sessions") as batch:
        batch.alter_column(
            "authenticated_at",
            existing_type=sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        )
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch.create_unique_constraint(op.f("uq_notifications_dedupe_key"), ["dedupe_key"])
    op.create_table(
        "qstash_deliveries",
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_qstash_deliveries")),
    )
    # Last: SQLite's batch mode reflects the tables a table refers to (`users`), and SQLAlchemy
    # warns that it cannot reflect an expression index.
    _rename_case_clashes()
    op.create_index("ix_users_lower_username", "users", [sa.text("lower(username)")], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_lower_username", table_name="users")
    op.drop_table("qstash_deliveries")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("uq_notifications_dedupe_key"), type_="unique")
        batch.drop_column("dedupe_key")
    with _refresh_tokens_kept(), op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("authenticated_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("revoked_at")
