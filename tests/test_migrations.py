"""Migrations are the only source of the schema: they must apply, reverse, and agree with the
models exactly."""

import asyncio
import os
import sys
import uuid
import warnings
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Integer,
    Uuid,
    column,
    insert,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit import migrations
from conduit.auth.models import AuthSession, RefreshToken, User
from conduit.database import (
    SCHEMA_REVISION,
    Base,
    UTCDateTime,
    schema_revision,
    utcnow,
)

pytestmark = pytest.mark.anyio


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "include_object": migrations.include_object},
    )
    with warnings.catch_warnings():
        # SQLite's reflection cannot read `ix_users_lower_username`; PostgreSQL's compares it.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        warnings.filterwarnings("ignore", "autogenerate skipping .* expression-based index")
        return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_downgrade_upgrade(empty_engine: AsyncEngine) -> None:
    await migrations.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_differences) == []

    await migrations.downgrade(empty_engine, "base")
    async with empty_engine.connect() as connection:
        assert await connection.run_sync(_tables) == {"alembic_version"}

    await migrations.upgrade(empty_engine)
    async with empty_engine.connect() as connection:
        assert set(Base.metadata.tables) <= await connection.run_sync(_tables)


async def test_the_code_s_schema_revision_is_alembic_s_head(empty_engine: AsyncEngine) -> None:
    """`SCHEMA_REVISION` says which migration this code runs on: a new migration moves it."""
    head = ScriptDirectory.from_config(migrations.alembic_config()).get_current_head()
    assert await schema_revision(empty_engine) is None

    await migrations.upgrade(empty_engine)

    assert head == SCHEMA_REVISION
    assert await schema_revision(empty_engine) == SCHEMA_REVISION


async def test_usernames_differing_only_by_case_are_renamed_but_the_oldest(
    empty_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    await migrations.upgrade(empty_engine, "6b2e0c4f9a17")
    long_name = "l" * 50
    # `alice-4` (older) and `alice-5` (newer) stand where the renames would first go.
    names = ["alice", "alice-4", "bob", "ALICE", "Alice", "alice-5", long_name, long_name.upper()]
    async with empty_engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {"username": name, "email": f"{number}@example.com", "password_hash": "x"}
                for number, name in enumerate(names)
            ],
        )
    capsys.readouterr()

    await migrations.upgrade(empty_engine)

    async with empty_engine.connect() as connection:
        rows = await connection.execute(select(User.id, User.username).order_by(User.id))
        assert [tuple(row) for row in rows] == [
            (1, "alice"),
            (2, "alice-4"),
            (3, "bob"),
            (4, "ALICE-4-2"),
            (5, "Alice-5-2"),
            (6, "alice-5"),
            (7, long_name),
            (8, "L" * 48 + "-8"),
        ]
    stderr = capsys.readouterr().err
    assert (
        "users: 'ALICE' (id 4) differs from an older username only by case; renamed 'ALICE-4-2'"
        in stderr
    )
    assert "renamed 'Alice-5-2'" in stderr
    assert f"renamed '{'L' * 48}-8'" in stderr
    assert "'bob'" not in stderr
    assert "'alice-5' (id 6)" not in stderr


# `auth_sessions` as the release before 9c4e2a7b51d3 writes it: without `authenticated_at`.
_SESSIONS_BEFORE = table(
    "auth_sessions",
    column("id", Uuid()),
    column("user_id", Integer()),
    column("created_at", UTCDateTime()),
)


async def test_security_round_two_keeps_refresh_tokens_and_the_release_before_it_signing_in(
    empty_engine: AsyncEngine,
) -> None:
    """9c4e2a7b51d3 rebuilds `auth_sessions` on SQLite, and dropping the old table deleted every
    refresh token by cascade; and the release before it opens sessions without
    `authenticated_at`, which must still work while a rolling deploy replaces it."""
    await migrations.upgrade(empty_engine, "6b2e0c4f9a17")
    signed_in = datetime(2026, 12, 1, tzinfo=UTC)
    before, during = uuid.uuid4(), uuid.uuid4()
    async with empty_engine.begin() as connection:
        await connection.execute(
            insert(User).values(username="alice", email="alice@example.com", password_hash="x")
        )
        await connection.execute(
            insert(_SESSIONS_BEFORE).values(id=before, user_id=1, created_at=signed_in)
        )
        await connection.execute(
            insert(RefreshToken).values(
                session_id=before, token_hash="a" * 64, expires_at=signed_in
            )
        )

    await migrations.upgrade(empty_engine)

    async with empty_engine.begin() as connection:
        await connection.execute(
            insert(_SESSIONS_BEFORE).values(id=during, user_id=1, created_at=utcnow())
        )
        assert await connection.scalar(select(RefreshToken.session_id)) == before
        rows = await connection.execute(select(AuthSession.id, AuthSession.authenticated_at))
        authenticated: dict[uuid.UUID, datetime] = {row[0]: row[1] for row in rows}
    assert authenticated[before] == signed_in
    assert authenticated[during] > signed_in


async def test_migrate_gives_up_on_a_held_lock_saying_who_holds_it_with_nothing_half_applied(
    empty_engine: AsyncEngine,
) -> None:
    """Each revision commits on its own: 6b2e0c4f9a17 lands, and 9c4e2a7b51d3, whose
    `ALTER TABLE auth_sessions` waits behind a transaction left open, is rolled back whole (its
    first statement, on `api_keys`, too) once the lock timeout runs out."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("the lock timeout is PostgreSQL's (SQLite waits its busy timeout)")
    await migrations.upgrade(empty_engine, "d3591788001f")
    environment = {
        **os.environ,
        "DATABASE_URL": empty_engine.url.render_as_string(hide_password=False),
        "CONDUIT_DB_MIGRATE_LOCK_TIMEOUT_SECONDS": "0.5",
    }
    async with empty_engine.connect() as holder:
        holder_pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        await holder.execute(text("LOCK TABLE auth_sessions IN ACCESS SHARE MODE"))
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "conduit",
            "migrate",
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        # Bounds a hang (no lock timeout at all), not the test's pace.
        output = (await asyncio.wait_for(migrate.communicate(), timeout=120))[0].decode()

    assert migrate.returncode == 75, output
    assert (
        "Migration 9c4e2a7b51d3 waited more than 0.5 s for a lock and was rolled back; " in output
    )
    assert "the database stays at 6b2e0c4f9a17" in output
    assert "ALTER TABLE auth_sessions ADD COLUMN authenticated_at" in output
    assert f"pid {holder_pid} holds AccessShareLock on auth_sessions: idle in transaction" in output
    assert "LOCK TABLE auth_sessions IN ACCESS SHARE MODE" in output
    assert "migration_applied" in output
    assert await schema_revision(empty_engine) == "6b2e0c4f9a17"
    async with empty_engine.connect() as connection:
        columns = await connection.run_sync(lambda sync: inspect(sync).get_columns("api_keys"))
    assert "revoked_at" not in {column["name"] for column in columns}

    await migrations.upgrade(empty_engine, lock_timeout_seconds=0.5)

    assert await schema_revision(empty_engine) == SCHEMA_REVISION


async def test_security_round_two_waits_for_a_registration_under_way_without_deadlocking(
    empty_engine: AsyncEngine,
) -> None:
    """A registration of the release before it writes `users` and then `auth_sessions`; the
    migration must not hold `auth_sessions` while it waits for `users`."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time")
    await migrations.upgrade(empty_engine, "6b2e0c4f9a17")
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with empty_engine.connect() as registration, empty_engine.connect() as observer:
        await registration.execute(
            insert(User).values(username="alice", email="alice@example.com", password_hash="x")
        )
        migrating = asyncio.create_task(migrations.upgrade(empty_engine, lock_timeout_seconds=60))
        while not await observer.scalar(waiting):
            await observer.rollback()
            await asyncio.sleep(0.01)
        await registration.execute(
            insert(_SESSIONS_BEFORE).values(id=uuid.uuid4(), user_id=1, created_at=utcnow())
        )
        await registration.commit()
        await migrating

    assert await schema_revision(empty_engine) == SCHEMA_REVISION
