"""What every benchmark sets up the same way: servers as child processes (`processes`, `servers`,
`reference`), the seeded benchmark databases (`database`), a PostgreSQL cluster and a Redis of a
run's own (`postgres`, `redis_server`), and Conduit as of a git ref (`baseline`)."""

from pathlib import Path

import typer

RESULTS = Path(__file__).resolve().parent.parent / "results"
# The servers' logs and the request files of the latest run (not kept in git).
SCRATCH = RESULTS / "tmp"


def worker_counts(value: str) -> list[int]:
    """`--workers`: positive integers, comma-separated, each once, in the order given."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise typer.BadParameter("positive integers, comma-separated", param_hint="--workers")
    return list(dict.fromkeys(int(item) for item in items))
