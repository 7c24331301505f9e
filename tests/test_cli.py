from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from conduit.cli import app

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
