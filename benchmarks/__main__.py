"""`./dev bench`: seed PostgreSQL, start Conduit and the floor (and, with --baseline, Conduit as
of a git ref; with --uncached, Conduit with its read cache off; with --quiet, Conduit without
its access log and metrics), drive them with wrk, and report.

See docs/benchmarks.md for what each scenario and measurement means.
"""

import asyncio
import os
import platform
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from benchmarks import measure, publish, report, scenarios
from benchmarks.explain import explain
from benchmarks.load import wrk
from benchmarks.measure import HalfCapacity, Load, ProbeResult, ScenarioResult
from benchmarks.scenarios import Scenario
from benchmarks.setup import SCRATCH, baseline, database, servers
from benchmarks.setup.baseline import Revision
from conduit.seed import ScaleName

EXTRAS = ("probe", "half")
ALL = ("list", "list-auth", "feed", "article", "comments", "tags", "mixed", "login", *EXTRAS)

app = typer.Typer(add_completion=False)


@dataclass(frozen=True, slots=True)
class Extras:
    probe_rate: float
    probe_seconds: int
    half_seconds: float


@dataclass(frozen=True, slots=True)
class Setup:
    """Where and how the targets run: Conduit on `port`, the floor on the next, the baseline
    (Conduit from a worktree's src/) on the one after, the uncached Conduit on the next, the
    quiet one on the next."""

    port: int
    workers: int
    baseline_source: Path | None
    uncached: bool
    quiet: bool
    # Where the Conduit targets share state; in process memory when None.
    redis_url: str | None

    @property
    def conduits(self) -> tuple[str, ...]:
        return tuple(name for name in self.targets() if name != "floor")

    def targets(self) -> dict[str, servers.Target]:
        targets = {"conduit": servers.conduit(self.port, self.workers, self.redis_url)}
        if self.baseline_source is not None:
            targets["baseline"] = servers.baseline(
                self.port + 2, self.workers, self.baseline_source, self.redis_url
            )
        if self.uncached:
            targets["uncached"] = servers.uncached(self.port + 3, self.workers, self.redis_url)
        if self.quiet:
            targets["quiet"] = servers.quiet(self.port + 4, self.workers, self.redis_url)
        targets["floor"] = servers.floor(self.port + 1, self.workers)
        return targets


def _machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        "unknown",
    )
    meminfo = Path("/proc/meminfo").read_text().split()
    memory_kib = int(meminfo[meminfo.index("MemTotal:") + 1])
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{memory_kib / 1024**2:.1f} GiB",
        "kernel": platform.release(),
    }


def _versions(url: str) -> dict[str, str]:
    packages = ("uvicorn", "fastapi", "pydantic", "sqlalchemy", "asyncpg", "uvloop", "httptools")
    return {
        "Python": platform.python_version(),
        "PostgreSQL": database.postgres_version(url),
        "wrk": wrk.version().removeprefix("wrk "),
        **{package: metadata.version(package) for package in packages},
    }


def _split(value: str, allowed: tuple[str, ...], option: str) -> list[str]:
    chosen = [item.strip() for item in value.split(",") if item.strip()]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise typer.BadParameter(f"choose from {', '.join(allowed)}", param_hint=option)
    return chosen


def _worker_counts(value: str) -> list[int]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or not all(item.isdigit() and int(item) > 0 for item in items):
        raise typer.BadParameter("positive integers, comma-separated", param_hint="--workers")
    return list(dict.fromkeys(int(item) for item in items))


def _checkout(revision: Revision | None) -> AbstractContextManager[Path | None]:
    return nullcontext() if revision is None else baseline.worktree(revision)


def _measure_scenarios(
    chosen: list[Scenario],
    *,
    targets: dict[str, servers.Target],
    pids: dict[str, int],
    load: Load,
    fixtures: database.Fixtures,
    url: str,
    redis_url: str | None,
) -> list[ScenarioResult]:
    results = []
    for scenario in chosen:
        print(f"{scenario.name}: {scenario.title}", flush=True)
        if "floor" in scenario.targets:
            measure.verify_same_json(scenario, targets)
        requests_file = SCRATCH / f"{scenario.name}.tsv"
        results.append(measure.scenario(scenario, targets, pids, requests_file, load))
        if scenario.name == "mixed":
            # Writes wrk sent last may still be committing when it returns.
            time.sleep(measure.SETTLE_SECONDS)
            database.restore(url, fixtures)
            if redis_url is not None:
                servers.clear_store(redis_url)
    return results


def _half_capacity(
    measured: list[ScenarioResult],
    targets: dict[str, servers.Target],
    pids: dict[str, int],
    load: Load,
    seconds: float,
) -> dict[str, HalfCapacity]:
    listing = next((result for result in measured if result.name == "list"), None)
    if listing is None:
        list_scenario = Scenario(
            "list", "max", tuple(targets), [wrk.Request("GET", scenarios.LIST)]
        )
        single = Load(load.seconds, load.warmup_seconds, 1, load.connections, load.threads)
        listing = measure.scenario(list_scenario, targets, pids, SCRATCH / "list.tsv", single)
    print("half: GET /api/articles?limit=20 at half the measured maximum", flush=True)
    return {
        name: measure.half_capacity(
            targets[name],
            [wrk.Request("GET", scenarios.LIST)],
            max_rps=summary.rps,
            seconds=seconds,
        )
        for name, summary in listing.targets.items()
    }


def _probe(
    conduit: servers.Target, fixtures: database.Fixtures, rate: float, seconds: int, load: Load
) -> ProbeResult:
    print(
        f"probe: {conduit.name} article latency at {rate:.0f} req/s, alone then during logins",
        flush=True,
    )
    logins_file = wrk.write_requests(
        SCRATCH / "probe-logins.tsv",
        [scenarios.login(email) for email in fixtures.reader_emails],
    )
    probe = [wrk.Request("GET", f"/api/articles/{slug}") for slug in fixtures.slugs]
    return measure.probe_under_logins(
        conduit,
        probe,
        logins_file,
        rate=rate,
        seconds=seconds,
        login_connections=load.connections,
    )


def _warn_if_refused(targets: list[servers.Target]) -> None:
    refused = servers.refused_connections(targets, SCRATCH)
    if refused:
        print(
            f"warning: PostgreSQL refused connections to {', '.join(refused)} (max_connections"
            " reached; counted as errors): every server keeps pools of its own, so raise"
            " max_connections or measure fewer workers",
            file=sys.stderr,
            flush=True,
        )


def _run_scale(
    scale: str,
    names: list[str],
    load: Load,
    *,
    setup: Setup,
    seed: int,
    extras: Extras,
) -> report.ScaleResult:
    print(f"== scale {scale}, workers {setup.workers}", flush=True)
    prepared = database.prepare(scale, seed)
    if setup.redis_url is not None:
        servers.clear_store(setup.redis_url)
    targets = setup.targets()
    env = database.server_env(prepared.url)
    with servers.running(list(targets.values()), env, SCRATCH) as pids:
        fixtures = database.fixtures(prepared.url)
        tokens = measure.tokens(targets["conduit"].base_url, fixtures.reader_emails)
        built = scenarios.build(fixtures, tokens, setup.conduits)
        chosen = [s for s in built if s.name in names]
        measured = _measure_scenarios(
            chosen,
            targets=targets,
            pids=pids,
            load=load,
            fixtures=fixtures,
            url=prepared.url,
            redis_url=setup.redis_url,
        )
        probes = (
            {
                name: _probe(targets[name], fixtures, extras.probe_rate, extras.probe_seconds, load)
                for name in setup.conduits
            }
            if "probe" in names
            else {}
        )
        half = (
            _half_capacity(measured, targets, pids, load, extras.half_seconds)
            if "half" in names
            else {}
        )
        token = measure.tokens(targets["conduit"].base_url, fixtures.reader_emails[:1])
    _warn_if_refused(list(targets.values()))
    # Once the servers have stopped: their idle pools could leave no connection to explain with.
    explained = asyncio.run(explain(prepared.url, database.SECRET, next(iter(token.values()))))
    return report.ScaleResult(
        scale=scale,
        database=database.without_password(prepared.url),
        reused=prepared.reused,
        seed_seconds=prepared.seed_seconds,
        counts=prepared.counts,
        scenarios=measured,
        probes=probes,
        half_capacity=half,
        explain=explained,
    )


def _run_section(
    setup: Setup,
    chosen_scales: list[str],
    names: list[str],
    load: Load,
    *,
    seed: int,
    extras: Extras,
) -> report.Section:
    results = [
        _run_scale(name, names, load, setup=setup, seed=seed, extras=extras)
        for name in chosen_scales
    ]
    return report.Section(workers=setup.workers, scales=results)


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
    counts = _worker_counts(workers)
    revision = baseline.revision(baseline_ref) if baseline_ref is not None else None
    SCRATCH.mkdir(parents=True, exist_ok=True)
    load = Load(duration, warmup, trials, connections, threads)
    extras = Extras(probe_rate, probe_seconds, half_seconds)
    started = datetime.now(UTC)
    with _checkout(revision) as source:
        sections = [
            _run_section(
                Setup(port, count, source, uncached, quiet, redis_url),
                chosen_scales,
                names,
                load,
                seed=seed,
                extras=extras,
            )
            for count in counts
        ]
    run = report.Run(
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        finished_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=" ".join(["./dev bench", *sys.argv[1:]]),
        machine=_machine(),
        versions=_versions(database.database_url(chosen_scales[-1])),
        baseline=revision,
        uncached=uncached,
        quiet=quiet,
        options={
            "duration": duration,
            "trials": trials,
            "warmup": warmup,
            "connections": connections,
            "threads": threads,
            "seed": seed,
            "store": "Redis" if redis_url else "process memory",
        },
        sections=sections,
    )
    path = publish.save(run, update_doc=update_doc)
    print(report.markdown(run))
    print(f"Results: {path}")


app()
