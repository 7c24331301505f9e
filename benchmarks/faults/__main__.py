"""`python -m benchmarks.faults`: every fault scenario, or those named, one after another on one
PostgreSQL cluster of the run's own."""

from typing import Annotated

import typer

from benchmarks.faults.scenarios import Scenario, measure
from benchmarks.setup import SCRATCH
from benchmarks.setup.postgres import StopMode, private_cluster

app = typer.Typer(add_completion=False)


@app.command()
def main(
    scenarios: Annotated[
        list[Scenario] | None,
        typer.Option("--scenario", help="Run this one (repeatable); all of them by default."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="conduit serve --workers.")] = 1,
    outage: Annotated[
        float, typer.Option(min=0.5, max=20, help="Seconds PostgreSQL or Redis is down.")
    ] = 2.0,
    stop_mode: Annotated[
        StopMode, typer.Option(help="How db-restart stops PostgreSQL: immediate is a crash.")
    ] = StopMode.FAST,
) -> None:
    """Inject faults into a loaded Conduit on loopback and report what its clients saw."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with private_cluster() as cluster:
        for scenario in scenarios or list(Scenario):
            result = measure(scenario, cluster, workers=workers, outage=outage, mode=stop_mode)
            print(result.report(), "\n", flush=True)


app()
