"""What a process does before it can answer its first request (docs/benchmarks.md, "Cold
start"), each in an interpreter of its own: the only place where an import not made yet, or the
collector's settings before Conduit is imported, can be seen."""

import os
import subprocess
import sys

import pytest

from tests.threaded import free_port

pytestmark = pytest.mark.one_pass


def _run(code: str, **environ: str) -> str:
    finished = subprocess.run(  # noqa: S603 (this interpreter, this code)
        [sys.executable, "-c", code],
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
print("pgqueuer" in sys.modules)
"""


def test_an_api_process_on_postgresql_starts_without_pgqueuer() -> None:
    """It imports PgQueuer with the first job it puts (`conduit.jobs.postgres_queue`). The
    database need not answer: the start connects to it for nothing."""
    nobody = f"postgresql://conduit:db-password@127.0.0.1:{free_port()}/conduit"

    assert _run(STARTS, DATABASE_URL=nobody) == "False"


def test_a_process_collects_as_it_serves_from_its_first_import_of_conduit() -> None:
    collector = _run(
        "import gc, conduit; thresholds = gc.get_threshold()\n"
        "from conduit.main import GC_YOUNG_THRESHOLD\n"
        "print(thresholds == (GC_YOUNG_THRESHOLD, 10, 10))"
    )

    assert collector == "True"
