"""How long `conduit serve` takes from its start to its first answered request.

Each run starts the installed `conduit serve` command as an operator would, polls
`GET /health/live` every 10 ms, and stops the server once it has answered; the time is from
the spawn to that first 200. On the embedded default (a SQLite file it migrates the first time,
so the first run is left out of the median) and, with `--postgres`, on PostgreSQL
(BENCH_DATABASE_URL, else the local `test` database), migrated first.

    .tools/bin/uv run python -m benchmarks.cold_start [--runs 7] [--postgres]

See docs/benchmarks.md ("Cold start").
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.setup import database, processes

app = typer.Typer(add_completion=False)

CONDUIT = Path(sys.executable).with_name("conduit")
DEADLINE_SECONDS = 30.0
POLL_SECONDS = 0.01


def first_answer(database_url: str) -> float:
    """Seconds from starting `conduit serve` to its first answered request."""
    port = processes.free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "CONDUIT_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    with processes.started([str(CONDUIT), "serve", "--port", str(port)], env=env) as server:
        processes.wait_until_answers(
            f"http://127.0.0.1:{port}/health/live",
            server,
            timeout=DEADLINE_SECONDS,
            interval=POLL_SECONDS,
        )
        return time.perf_counter() - started


def _report(name: str, times: list[float]) -> None:
    shown = ", ".join(f"{value:.2f}" for value in times)
    print(f"{name}: median {statistics.median(times):.2f} s, min {min(times):.2f} s ({shown})")


@app.command()
def main(
    runs: Annotated[int, typer.Option(min=1, help="Starts measured per database.")] = 7,
    postgres: Annotated[bool, typer.Option(help="Also on PostgreSQL.")] = False,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sqlite = f"sqlite:///{directory}/cold.db"
        migrating = first_answer(sqlite)
        print(f"sqlite, first start (migrates the new file): {migrating:.2f} s")
        _report("sqlite", [first_answer(sqlite) for _ in range(runs)])
    if postgres:
        url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        # `conduit serve` refuses a PostgreSQL database older than its release.
        database.migrate(url, quiet=True)
        _report("postgresql", [first_answer(url) for _ in range(runs)])


if __name__ == "__main__":
    app()
