"""`./dev bench`: seed PostgreSQL, start Conduit and the floor (and, with --baseline, Conduit as
of a git ref; with --uncached, Conduit with its read cache off; with --quiet, Conduit without
its access log and metrics), drive them with wrk, and report.

See docs/benchmarks.md for what each scenario and measurement means.
"""

from typing import Annotated

import typer

from benchmarks.harness import publish, report
from benchmarks.harness import run as harness
from benchmarks.harness.trials import Load
from benchmarks.load import wrk
from benchmarks.setup import baseline, worker_counts
from conduit.seed import ScaleName

EXTRAS = ("probe", "half")
ALL = ("list", "list-auth", "feed", "article", "comments", "tags", "mixed", "login", *EXTRAS)

app = typer.Typer(add_completion=False)


def _split(value: str, allowed: tuple[str, ...], option: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise typer.BadParameter(f"choose from {', '.join(allowed)}", param_hint=option)
    return chosen


@app.command()
def main(
    *,
    scale: Annotated[ScaleName, typer.Option(help="Dataset size.")] = ScaleName.SMALL,
    scales: Annotated[
        str | None,
        typer.Option(help="Compare scales, e.g. small,large: every scenario runs at each."),
    ] = None,
    scenario_names: Annotated[
        str, typer.Option("--scenarios", help=f"Comma-separated, from {', '.join(ALL)}.")
    ] = ",".join(ALL),
    workers: Annotated[
        str,
        typer.Option(
            help="Worker processes per server, comma-separated: every scenario runs at each."
        ),
    ] = "1,2",
    duration: Annotated[int, typer.Option(min=1, help="Seconds per trial.")] = 10,
    trials: Annotated[int, typer.Option(min=1, help="Trials per scenario and target.")] = 3,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up seconds per target.")] = 2,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 32,
    threads: Annotated[int, typer.Option(min=1, help="wrk threads.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the dataset.")] = 1,
    probe_rate: Annotated[float, typer.Option(min=1, help="Probe req/s.")] = 20,
    probe_seconds: Annotated[int, typer.Option(min=1, help="Probe seconds.")] = 10,
    half_seconds: Annotated[float, typer.Option(min=1, help="Half-capacity seconds.")] = 10,
    port: Annotated[
        int,
        typer.Option(
            help="Conduit's port; the floor's is the next, then the baseline's, the"
            " uncached Conduit's and the quiet Conduit's."
        ),
    ] = 8700,
    baseline_ref: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="A git ref (HEAD~1, a commit): also measure Conduit as of that commit.",
        ),
    ] = None,
    uncached: Annotated[
        bool,
        typer.Option(
            "--uncached",
            help="Also measure the current Conduit with its read cache off"
            " (CONDUIT_CACHE_ENABLED=false).",
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            help="Also measure the current Conduit without its access log and metrics"
            " (CONDUIT_LOG_ACCESS=false, CONDUIT_METRICS_ENABLED=false).",
        ),
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="A Redis URL: the Conduit targets keep rate limits and cache there, not in"
            " memory.",
        ),
    ] = None,
    update_doc: Annotated[
        bool,
        typer.Option(
            help="Replace the latest results and docs/benchmarks.md's section; with"
            " --no-update-doc the run's results are kept beside them, named by its start."
        ),
    ] = True,
) -> None:
    """Benchmark Conduit against the floor on a seeded PostgreSQL database."""
    wrk.ensure_installed()
    names = _split(scenario_names, ALL, "--scenarios")
    chosen_scales = _split(scales, tuple(ScaleName), "--scales") if scales else [scale.value]
    revision = baseline.revision(baseline_ref) if baseline_ref is not None else None
    options = harness.Options(
        scales=chosen_scales,
        scenarios=names,
        worker_counts=worker_counts(workers),
        load=Load(duration, warmup, trials, connections, threads),
        extras=harness.Extras(probe_rate, probe_seconds, half_seconds),
        seed=seed,
        port=port,
        baseline=revision,
        uncached=uncached,
        quiet=quiet,
        redis_url=redis_url,
    )
    run = harness.run(options)
    path = publish.save(run, update_doc=update_doc)
    print(report.markdown(run))
    print(f"Results: {path}")


app()
