"""How long `conduit serve` takes from its start to its first answered request, against a bare
FastAPI app started the same way in the same run.

Each start spawns a server, polls `GET /health/live` every 10 ms, and stops the server once it
has answered; the time is from the spawn to that first 200. Both run from Conduit as deployed:
an environment the script makes first as the image does (Dockerfile: the locked dependencies
without the development ones, Conduit as a wheel, bytecode compiled), in a directory of its own,
removed after. Conduit is started with that environment's `conduit serve`, as an operator
would: on the embedded default (a SQLite file it migrates the first time, so that first start
is reported apart) and, with `--postgres`, on PostgreSQL (BENCH_DATABASE_URL, else the local
`test` database), migrated first. The reference is `python -m benchmarks.bare`: FastAPI,
pydantic and SQLAlchemy's asyncio layer imported, one `/health/live` route, served by uvicorn
with uvloop and httptools as Conduit is. The starts take turns, the first of each round one
further along, so that a slow moment of the machine falls on each alike; each Conduit series is
reported against the reference's as the ratio of the best starts and of the medians.

    .tools/bin/uv run python -m benchmarks.cold_start [--runs 7] [--postgres]

See docs/benchmarks.md ("Cold start").
"""

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.setup import database, processes

app = typer.Typer(add_completion=False)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "bare FastAPI"
DEADLINE_SECONDS = 30.0
POLL_SECONDS = 0.01


@contextmanager
def deployed() -> Iterator[Path]:
    """The `bin` directory of an environment where Conduit is installed as the image installs
    it. A development environment starts slower: its editable install resolves imports through
    a finder, and what the tools bring is imported too (rich imports attrs when it is there)."""
    uv = os.environ.get("UV", str(ROOT / ".tools" / "bin" / "uv"))
    with tempfile.TemporaryDirectory(prefix="conduit-deployed-") as directory:
        subprocess.run(
            [uv, "sync", "--frozen", "--no-dev", "--no-editable", "--compile-bytecode", "--quiet"],
            cwd=ROOT,
            env={**os.environ, "UV_PROJECT_ENVIRONMENT": directory},
            check=True,
        )
        yield Path(directory) / "bin"


def first_answer(command: list[str], database_url: str) -> float:
    """Seconds from spawning `command`, a server told its port with `--port`, to its first
    answered request."""
    port = processes.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CONDUIT_LOG_LEVEL": "WARNING",
        # The reference's module, from this checkout.
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    with processes.started([*command, "--port", str(port)], env=env) as server:
        processes.wait_until_answers(
            f"http://127.0.0.1:{port}/health/live",
            server,
            timeout=DEADLINE_SECONDS,
            interval=POLL_SECONDS,
        )
        return time.perf_counter() - started


Start = Callable[[], float]


def _interleaved(starts: dict[str, Start], runs: int) -> dict[str, list[float]]:
    """`runs` starts of each, taking turns; round n begins with the n-th."""
    names = list(starts)
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(starts[name]())
    return times


def _report(name: str, times: list[float]) -> None:
    shown = ", ".join(f"{value:.2f}" for value in times)
    print(f"{name}: median {statistics.median(times):.2f} s, min {min(times):.2f} s ({shown})")


def _ratio(name: str, times: list[float], reference: list[float]) -> None:
    best = min(times) / min(reference)
    median = statistics.median(times) / statistics.median(reference)
    print(f"{name} / {REFERENCE}: {best:.2f}x best of {len(times)}, {median:.2f}x median")


@app.command()
def main(
    runs: Annotated[int, typer.Option(min=1, help="Starts measured per server.")] = 7,
    postgres: Annotated[bool, typer.Option(help="Also on PostgreSQL.")] = False,
) -> None:
    with deployed() as bin, tempfile.TemporaryDirectory() as directory:
        conduit = [str(bin / "conduit"), "serve"]
        bare = [str(bin / "python"), "-m", "benchmarks.bare"]
        sqlite = f"sqlite:///{directory}/cold.db"
        migrating = first_answer(conduit, sqlite)
        print(f"sqlite, first start (migrates the new file): {migrating:.2f} s")
        starts: dict[str, Start] = {"sqlite": lambda: first_answer(conduit, sqlite)}
        if postgres:
            url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
            # `conduit serve` refuses a PostgreSQL database older than its release.
            database.migrate(url, quiet=True)
            starts["postgresql"] = lambda: first_answer(conduit, url)
        starts[REFERENCE] = lambda: first_answer(bare, sqlite)
        times = _interleaved(starts, runs)
    for name, series in times.items():
        _report(name, series)
    for name, series in times.items():
        if name != REFERENCE:
            _ratio(name, series, times[REFERENCE])


if __name__ == "__main__":
    app()
