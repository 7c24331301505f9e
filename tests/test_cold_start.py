"""What a process does before it can answer its first request (docs/benchmarks.md, "Cold
start"), each in an interpreter of its own: the only place where an import not made yet, or the
collector's settings before Conduit is imported, can be seen."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conduit import operations
from conduit.config import Settings
from conduit.main import create_app
from tests.threaded import free_port

pytestmark = pytest.mark.one_pass


def _run(code: str, *arguments: str, **environ: str) -> str:
    finished = subprocess.run(  # noqa: S603 (this interpreter, this code)
        [sys.executable, "-c", code, *arguments],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip()


STARTS = """
import asyncio
import sys

from conduit.main import create_app


async def start_and_stop() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        pass


asyncio.run(start_and_stop())
print(" ".join(sorted(name for name in sys.argv[1:] if name in sys.modules)) or "none")
"""


def test_an_api_process_on_postgresql_starts_without_pgqueuer() -> None:
    """It imports PgQueuer with the first job it puts (`conduit.jobs.postgres_queue`). The
    database need not answer: the start connects to it for nothing."""
    nobody = f"postgresql://conduit:db-password@127.0.0.1:{free_port()}/conduit"

    assert _run(STARTS, "pgqueuer", DATABASE_URL=nobody) == "none"


def test_a_process_on_sqlite_starts_without_postgresql_or_a_thread_limiter(tmp_path: Path) -> None:
    """The PostgreSQL dialect is imported by the engine that needs it or a PostgreSQL insert,
    and anyio's backend by the first password hash (`conduit.auth.passwords`). Not the first
    start, which migrates the new file with Alembic, whose modules import the dialect."""
    database = f"sqlite:///{tmp_path / 'conduit.db'}"
    _run(STARTS, DATABASE_URL=database)
    imported = _run(
        STARTS,
        "sqlalchemy.dialects.postgresql",
        "anyio._backends._asyncio",
        DATABASE_URL=database,
    )

    assert imported == "none"


def test_the_routes_are_the_apps_own() -> None:
    """Not an included router's, whose routes FastAPI builds a second time on the first
    request (`conduit.main.Conduit.include`): the API's, and the health checks' that a
    platform probes first."""
    app = create_app(Settings())
    own = {id(route) for route in app.routes}

    assert len(app.api_routes) > 20
    assert all(id(route) in own for route in [*app.api_routes, *operations.router.routes])


def test_a_process_collects_as_it_serves_from_its_first_import_of_conduit() -> None:
    collector = _run(
        "import gc, conduit; thresholds = gc.get_threshold()\n"
        "from conduit.main import GC_YOUNG_THRESHOLD\n"
        "print(thresholds == (GC_YOUNG_THRESHOLD, 10, 10))"
    )

    assert collector == "True"
