"""Migrations are the only source of the schema: they must apply, reverse, and agree with the
models exactly."""

import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit import migrations
from conduit.auth.models import User
from conduit.config import DatabaseSettings
from conduit.database import (
    SCHEMA_REVISION,
    Base,
    Schema,
    connect,
    create_engine,
    schema_revision,
    schema_standing,
)
from tests.databases import create_postgres_database, drop_postgres_database

pytestmark = pytest.mark.anyio


@pytest.fixture
async def empty_engine(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of its own, with no schema yet, on the same backend."""
    if database_url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("migrations") / "empty.db"
        engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
        yield engine
        await engine.dispose()
        return
    server_url = os.environ["TEST_DATABASE_URL"]
    url = await create_postgres_database(server_url)
    engine = create_engine(DatabaseSettings(url=url))
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_postgres_database(server_url, url)


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


@pytest.mark.parametrize(
    ("revision", "expected"),
    [
        (SCHEMA_REVISION, Schema.CURRENT),
        ("6b2e0c4f9a17", Schema.OLDER),
        ("7bf4037cc97d", Schema.OLDER),
        (None, Schema.OLDER),
        # Not in this release's graph: a later release's migration.
        ("0a1b2c3d4e5f", Schema.NEWER),
    ],
)
async def test_a_schema_stands_to_the_release_by_alembic_s_graph(
    revision: str | None, expected: Schema
) -> None:
    assert await schema_standing(revision) is expected


async def test_the_embedded_default_leaves_a_newer_schema_alone(
    database_url: str, tmp_path: Path
) -> None:
    """A later release migrated the SQLite file: this release serves on it rather than asking
    Alembic to upgrade from a revision it does not have."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the embedded default is SQLite")
    settings = DatabaseSettings(url=f"sqlite:///{tmp_path / 'newer.db'}")
    engine = create_engine(settings)
    await migrations.upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0a1b2c3d4e5f'"))
    await engine.dispose()

    async with connect(settings) as database:
        assert await schema_revision(database.engine) == "0a1b2c3d4e5f"


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
