import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from conduit.cli import app
from conduit.config import DatabaseSettings, JobsSettings, Settings
from conduit.main import create_app
from tests import factories

runner = CliRunner()


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")

    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert "Database migrated to head." in result.output
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert "articles" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_refuses_to_start_in_production_with_the_default_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.delenv("CONDUIT_SECRET_KEY", raising=False)

    result = runner.invoke(app, ["serve"])

    assert result.exit_code == 2
    assert "CONDUIT_SECRET_KEY must be set in production" in result.output


def test_refuses_to_start_in_production_without_a_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_SECRET_KEY", "s" * 32)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    result = runner.invoke(app, ["serve"])

    assert result.exit_code == 2
    assert result.output == (
        "Invalid configuration:\n  DATABASE_URL must be set in production: "
        "postgresql://user:password@host:5432/name, or sqlite:////path/to/conduit.db for one "
        "process on one machine\n"
    )


def test_the_embedded_worker_writes_emails_to_the_log_without_an_smtp_server(
    tmp_path: Path,
) -> None:
    """`conduit worker` on the embedded default, as an operator runs it: a job queued by the
    API (CONDUIT_JOBS_RUN_IN_API=false) runs, and its email, with no SMTP server, is in the
    worker's log, body included (development)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "CONDUIT_JOBS_RUN_IN_API": "false",
    }
    env.pop("CONDUIT_SMTP_HOST", None)
    app_under_test = create_app(
        Settings(
            database=DatabaseSettings(url=env["DATABASE_URL"]),
            jobs=JobsSettings(run_in_api=False),
        )
    )

    async def register() -> None:
        async with (
            app_under_test.router.lifespan_context(app_under_test),
            AsyncClient(transport=ASGITransport(app=app_under_test), base_url="http://t") as client,
        ):
            await factories.register(client, "logged")

    asyncio.run(register())
    worker = subprocess.run(
        [sys.executable, "-m", "conduit", "worker", "--drain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert (
        "email_logged: no SMTP server, to logged@example.com: Welcome to Conduit" in worker.stdout
    )
    assert "Hello logged," in worker.stdout
    assert "job_done: auth.welcome_email" in worker.stdout


def test_version_and_short_help() -> None:
    version = runner.invoke(app, ["--version"])
    short_help = runner.invoke(app, ["-h"])
    serve_help = runner.invoke(app, ["serve", "-h"])

    assert version.exit_code == 0
    assert version.output == "conduit 0.1.0\n"
    assert short_help.exit_code == serve_help.exit_code == 0
    assert "serve" in short_help.output
    assert "--workers" in serve_help.output
