"""`python -m benchmarks.replicas`: the cost of routing at each `--workers` count, then a dead
replica and staleness, on one replicated cluster of the run's own."""

from datetime import UTC, datetime
from typing import Annotated

import typer

from benchmarks.load import wrk
from benchmarks.replicas import dead_replica, routing, staleness
from benchmarks.replicas.cluster import LOGS, set_up
from benchmarks.setup import worker_counts

app = typer.Typer(add_completion=False)


@app.command()
def main(
    *,
    seconds: Annotated[int, typer.Option(min=1, help="Seconds per wrk trial.")] = 3,
    trials: Annotated[int, typer.Option(min=1, help="Trials per load and target.")] = 3,
    warmup: Annotated[int, typer.Option(min=1, help="Warm-up seconds per target.")] = 1,
    workers: Annotated[
        str, typer.Option(help="Worker processes per server, comma-separated (routing).")
    ] = "1,2",
    redis_url: Annotated[
        str | None,
        typer.Option("--redis", help="A Redis URL for the shared store; in-process without."),
    ] = None,
    lag_ms: Annotated[
        int, typer.Option(min=100, help="The replica's apply delay for staleness.")
    ] = 2000,
    outage: Annotated[float, typer.Option(min=1, help="Seconds a replica stays dead.")] = 5.0,
    write_seconds: Annotated[float, typer.Option(min=1, help="Seconds of writes.")] = 10.0,
) -> None:
    """Measure what read replicas and PgBouncer cost, a dead replica, and stale reads."""
    counts = worker_counts(workers)
    wrk.ensure_installed()
    LOGS.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    watched = max(counts) if redis_url is not None else 1
    with set_up(redis_url) as setup:
        print(
            f"### Read replicas and PgBouncer, {started:%Y-%m-%dT%H:%M:%SZ}\n\n"
            f"PostgreSQL {setup.cluster.primary.query('SHOW server_version')}, PgBouncer"
            f" {'.'.join(map(str, setup.bouncers[0].version))}, {wrk.version()},"
            f" store: {redis_url or 'memory'}; wrk -t1 -c{routing.CONNECTIONS},"
            f" {trials} trials of {seconds} s\n",
            flush=True,
        )
        for count in counts:
            routing.run(setup, count, seconds, trials, warmup)
        dead_replica.run(setup, watched, outage)
        staleness.run(setup, watched, lag_ms, write_seconds)
    print(f"took {(datetime.now(UTC) - started).total_seconds():.0f} s")


if __name__ == "__main__":
    app()
