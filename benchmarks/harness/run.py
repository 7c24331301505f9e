"""One `./dev bench` run: at each worker count and scale, the database prepared, the targets
started side by side, every chosen scenario measured in trials, the fixed-rate measurements,
EXPLAIN of Conduit's statements; recorded as a `report.Run`."""

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

from benchmarks.harness import fixed_rate, report, scenarios, trials
from benchmarks.harness.explain import explain
from benchmarks.harness.fixed_rate import HalfCapacity, ProbeResult
from benchmarks.harness.scenarios import Scenario
from benchmarks.harness.trials import Load, ScenarioResult
from benchmarks.load import wrk
from benchmarks.setup import SCRATCH, baseline, database, servers
from benchmarks.setup.baseline import Revision


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
            trials.verify_same_json(scenario, targets)
        requests_file = SCRATCH / f"{scenario.name}.tsv"
        results.append(trials.scenario(scenario, targets, pids, requests_file, load))
        if scenario.name == "mixed":
            # Writes wrk sent last may still be committing when it returns.
            time.sleep(trials.SETTLE_SECONDS)
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
        listing = trials.scenario(list_scenario, targets, pids, SCRATCH / "list.tsv", single)
    print("half: GET /api/articles?limit=20 at half the measured maximum", flush=True)
    return {
        name: fixed_rate.half_capacity(
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
    return fixed_rate.probe_under_logins(
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
        fixtures = database.fixtures(prepared)
        tokens = scenarios.tokens(targets["conduit"].base_url, fixtures.reader_emails)
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
        token = scenarios.tokens(targets["conduit"].base_url, fixtures.reader_emails[:1])
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


@dataclass(frozen=True, slots=True)
class Options:
    """What a run measures, as its command line chose it."""

    scales: list[str]
    scenarios: list[str]
    worker_counts: list[int]
    load: Load
    extras: Extras
    seed: int
    port: int
    baseline: Revision | None
    uncached: bool
    quiet: bool
    redis_url: str | None


def run(options: Options) -> report.Run:
    """Every scale at every worker count, the servers restarted for each; with a baseline, its
    worktree checked out for the length of the run."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    with _checkout(options.baseline) as source:
        sections = [
            _run_section(
                Setup(
                    options.port, count, source, options.uncached, options.quiet, options.redis_url
                ),
                options.scales,
                options.scenarios,
                options.load,
                seed=options.seed,
                extras=options.extras,
            )
            for count in options.worker_counts
        ]
    load = options.load
    return report.Run(
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        finished_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        command=" ".join(["./dev bench", *sys.argv[1:]]),
        machine=_machine(),
        versions=_versions(database.database_url(options.scales[-1])),
        baseline=options.baseline,
        uncached=options.uncached,
        quiet=options.quiet,
        options={
            "duration": load.seconds,
            "trials": load.trials,
            "warmup": load.warmup_seconds,
            "connections": load.connections,
            "threads": load.threads,
            "seed": options.seed,
            "store": "Redis" if options.redis_url else "process memory",
        },
        sections=sections,
    )
