import asyncio
import gc
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from httpx import ASGITransport, AsyncClient
from sqlalchemy import create_engine, inspect
from typer.core import TyperGroup
from typer.testing import CliRunner

from conduit import __main__ as entry_point
from conduit.cli import app
from conduit.config import DatabaseSettings, JobsSettings, Settings
from conduit.database import SCHEMA_REVISION
from conduit.main import create_app
from tests import factories

runner = CliRunner()


def test_migrate_creates_the_schema_saying_which_revisions_it_applies_and_never_goes_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cli.db"

    def migrate(*arguments: str) -> subprocess.CompletedProcess[str]:
        # In a process of its own: `conduit migrate` configures its process's logging.
        return subprocess.run(  # noqa: S603 (this interpreter, these arguments)
            [sys.executable, "-m", "conduit", "migrate", *arguments],
            env={**os.environ, "DATABASE_URL": f"sqlite:///{path}"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = migrate()
    back = migrate("7bf4037cc97d")

    assert result.returncode == 0, result.stderr
    assert "Database migrated to head." in result.stdout
    applied = [line for line in result.stdout.splitlines() if "migration_applied" in line]
    assert "revision=7bf4037cc97d" in applied[0]
    assert f"revision={SCHEMA_REVISION}" in applied[-1]
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert "articles" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert back.returncode == 2
    assert back.stderr.startswith("Cannot migrate to 7bf4037cc97d: ")
    assert "`conduit migrate` only upgrades" in back.stderr


@pytest.mark.one_pass
def test_refuses_to_start_in_production_with_the_default_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.delenv("CONDUIT_SECRET_KEY", raising=False)

    result = runner.invoke(app, ["serve"])

    assert result.exit_code == 2
    assert "CONDUIT_SECRET_KEY must be set in production" in result.output


@pytest.mark.one_pass
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
    assert "worker_stopped: drained, 1 job runs, 0 failed" in worker.stdout


@pytest.mark.one_pass
def test_version_and_short_help() -> None:
    version = runner.invoke(app, ["--version"])
    short_help = runner.invoke(app, ["-h"])
    serve_help = runner.invoke(app, ["serve", "-h"])

    assert version.exit_code == 0
    assert version.output == "conduit 0.13.0\n"
    assert short_help.exit_code == serve_help.exit_code == 0
    assert "serve" in short_help.output
    assert "--workers" in serve_help.output


def test_the_command_runs_with_the_collector_on_after_freezing_what_importing_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["conduit", "--version"])
    frozen = gc.get_freeze_count()

    with pytest.raises(SystemExit) as exited:
        entry_point.main()

    assert exited.value.code == 0
    assert capsys.readouterr().out == "conduit 0.13.0\n"
    assert gc.isenabled()
    assert gc.get_freeze_count() > frozen


def _command_paths(group: TyperGroup, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _command_paths(command, [*path, name])
        else:
            yield [*path, name]


def _conduit() -> TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return group


COMMAND_PATHS = list(_command_paths(_conduit(), []))
# Punctuation after a space ("Log every request ."), a flag's type (`<bool>`), a word cut at its
# hyphen by the wrapping, anything but printable ASCII (box drawing, colour codes).
HELP_DEFECT = re.compile(r" [.,;:!?)]|<bool>|\w-$|[^\x20-\x7e]")


@pytest.mark.one_pass
@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda path: " ".join(["conduit", *path]))
def test_help_reads_well_in_80_columns(path: list[str]) -> None:
    """Every command's help, as an 80-column terminal shows it: no line wider, no defect, and a
    summary of each sub-command that is a whole sentence, not one cut short with "..."."""
    shown = runner.invoke(
        app, [*path, "--help"], prog_name="conduit", env={"COLUMNS": "80", "NO_COLOR": "1"}
    )

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"Usage: conduit {' '.join(path)}".rstrip())
    for line in lines:
        assert len(line) <= 80, line
        assert not HELP_DEFECT.search(line), line
    if "Commands:" in lines:
        summaries = lines[lines.index("Commands:") + 1 :]
        assert summaries
        assert all(summary.endswith(".") and not summary.endswith("...") for summary in summaries)


@pytest.mark.one_pass
@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda path: " ".join(["conduit", *path]))
def test_every_command_and_parameter_says_what_it_is_for_in_sentences(path: list[str]) -> None:
    command = typer.main.get_command(app)
    context = typer.Context(command, info_name="conduit")
    for name in path:
        assert isinstance(command, TyperGroup)
        command = command.commands[name]
        context = typer.Context(command, info_name=name, parent=context)

    assert command.help
    assert command.help.split("\n\n")[0].rstrip().endswith(".")
    for parameter in command.get_params(context):
        described = getattr(parameter, "help", None)
        assert described, parameter.name
        assert described.endswith("."), described


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("arguments", "environment", "refusal"),
    [
        (
            ["--reload", "--workers", "2"],
            {},
            "--reload restarts one worker: leave out --workers or --reload.",
        ),
        (
            ["--reload"],
            {"CONDUIT_ENV": "production", "CONDUIT_SECRET_KEY": "a-production-secret-" * 2},
            "--reload is for development, and CONDUIT_ENV is production.",
        ),
    ],
)
def test_reload_is_refused_in_production_and_with_several_workers(
    tmp_path: Path, arguments: list[str], environment: dict[str, str], refusal: str
) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", **environment}
    refused = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "conduit", "serve", "--port", "0", *arguments],
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert refused.returncode == 2
    [line] = (refused.stdout + refused.stderr).splitlines()
    assert refusal in line
    assert not (tmp_path / "never.db").exists()
