"""What `conduit serve` and `conduit worker` check before they start (`conduit.startup`), on real
servers: ports nothing listens on, one that never answers, empty databases, and databases at
another release's migration. The real processes are in tests/e2e/test_operations.py."""

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from conduit import startup
from conduit.config import DatabaseSettings, RedisSettings, Settings
from tests.databases import create_postgres_database, drop_postgres_database, stamp_revision
from tests.threaded import free_port

pytestmark = pytest.mark.anyio


def _settings(settings: Settings, database: str, redis: RedisSettings | None = None) -> Settings:
    return settings.model_copy(
        update={
            "database": DatabaseSettings(url=database, connect_timeout_seconds=2),
            "redis": redis or RedisSettings(url=None, rest_url=None, rest_token=None),
        }
    )


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return sorted(
        (record.levelname, record.getMessage(), getattr(record, "detail", ""))
        for record in caplog.records
    )


@pytest.mark.parametrize(("database_required", "level"), [(False, "WARNING"), (True, "ERROR")])
async def test_a_database_and_a_store_that_do_not_answer_are_named_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture, database_required: bool, level: str
) -> None:
    """The API starts anyway (readiness fails until the database answers, the store has its
    outage mode); the worker does not start without the database."""
    database_port, redis_port = free_port(), free_port()
    down = _settings(
        settings,
        f"postgresql://conduit:db-password@127.0.0.1:{database_port}/conduit",
        RedisSettings(url=f"redis://:redis-password@127.0.0.1:{redis_port}/0"),
    )
    refused = pytest.raises(startup.Refused) if database_required else contextlib.nullcontext()

    with caplog.at_level(logging.WARNING, logger="conduit.startup"), refused:
        await startup.check(down, database_required=database_required)

    assert _logged(caplog) == [
        (
            level,
            "database_unreachable",
            f"DATABASE_URL: connection refused by 127.0.0.1:{database_port}: is PostgreSQL "
            "running there?",
        ),
        (
            "WARNING",
            "shared_store_unreachable",
            f"REDIS_URL: connection refused by 127.0.0.1:{redis_port}: is Redis running there, "
            "on that port?",
        ),
    ]
    assert "password" not in caplog.text


async def test_a_database_that_never_answers_costs_the_connect_timeout(
    settings: Settings, silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    silent = _settings(settings, f"postgresql://postgres@127.0.0.1:{silent_server}/conduit")
    silent = silent.model_copy(
        update={"database": silent.database.model_copy(update={"connect_timeout_seconds": 0.2})}
    )

    with anyio.fail_after(10), caplog.at_level(logging.WARNING, logger="conduit.startup"):
        await startup.check(silent, database_required=False)

    assert [record.detail for record in caplog.records] == [  # type: ignore[attr-defined]
        f"DATABASE_URL: no answer from 127.0.0.1:{silent_server} within 0.2 s to connect or "
        f"{silent.database.statement_timeout_seconds:g} s for a statement: is it reachable from "
        "here (a firewall, another network), overloaded, or is a lock holding statements up?"
    ]


async def test_an_upstash_store_that_does_not_answer_is_a_warning(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    upstash = RedisSettings(
        rest_url=f"http://127.0.0.1:{port}", rest_token=SecretStr("the-token"), timeout_seconds=2
    )

    with caplog.at_level(logging.WARNING, logger="conduit.startup"):
        await startup.check(
            _settings(settings, f"sqlite:///{tmp_path / 'up.db'}", upstash),
            database_required=True,
        )

    assert _logged(caplog) == [
        (
            "WARNING",
            "shared_store_unreachable",
            f"UPSTASH_REDIS_REST_URL: connection refused by 127.0.0.1:{port}: is the URL right?",
        )
    ]


@pytest.fixture
async def empty_postgres() -> AsyncIterator[str]:
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url is None:
        pytest.skip("TEST_DATABASE_URL is not set (CI sets it)")
    url = await create_postgres_database(server_url)
    try:
        yield url
    finally:
        await drop_postgres_database(server_url, url)


@pytest.mark.parametrize("revision", [None, "6b2e0c4f9a17"])
async def test_a_postgres_schema_older_than_the_release_is_refused(
    settings: Settings,
    empty_postgres: str,
    revision: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if revision is not None:
        await stamp_revision(empty_postgres, revision)

    with caplog.at_level(logging.WARNING), pytest.raises(startup.Refused):
        await startup.check(_settings(settings, empty_postgres), database_required=False)

    assert _logged(caplog) == [
        (
            "ERROR",
            "The database is not migrated to this release: run `conduit migrate` first.",
            "",
        )
    ]


@pytest.mark.parametrize(
    ("revision", "logged"),
    [("6b2e0c4f9a17", []), ("0a1b2c3d4e5f", [("WARNING", "schema_newer", "0a1b2c3d4e5f")])],
)
async def test_the_embedded_default_starts_on_an_older_schema_and_a_newer_one(
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    revision: str,
    logged: list[tuple[str, str, str]],
) -> None:
    """Older, it migrates itself when it connects; newer, a later release migrated it (a
    warning says so, with its revision)."""
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    await stamp_revision(url, revision)

    with caplog.at_level(logging.WARNING):
        await startup.check(_settings(settings, url), database_required=True)

    assert [
        (record.levelname, record.getMessage(), getattr(record, "revision", ""))
        for record in caplog.records
    ] == logged
