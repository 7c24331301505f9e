"""`python -m benchmarks.profile`: a request's CPU by layer, as a table (see the package)."""

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.harness import scenarios
from benchmarks.load import wrk
from benchmarks.load.wrk import Request, WrkResult
from benchmarks.profile import spy
from benchmarks.profile.layers import LAYERS, OTHER, Layers
from benchmarks.setup import SCRATCH, baseline, database, processes, servers
from conduit.seed import ScaleName

OUTPUT = SCRATCH / "profile"
SAMPLES = OUTPUT / "samples.txt"
CONNECTIONS = 32
# The harness's reads, which the floor serves too.
READS = ("list", "list-auth", "feed", "article", "comments", "tags")

app = typer.Typer(add_completion=False)


@dataclass(frozen=True, slots=True)
class Profile:
    load: WrkResult
    cpu_seconds: float
    recording: spy.Recording

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.load.requests


def _requests(
    prepared: database.Prepared, target: servers.Target, paths: list[str], scenario: str | None
) -> list[Request]:
    if scenario is None:
        return [Request("GET", path) for path in paths]
    fixtures = database.fixtures(prepared)
    tokens = scenarios.tokens(target.base_url, fixtures.reader_emails)
    built = scenarios.build(fixtures, tokens, (target.name,))
    return next(chosen for chosen in built if chosen.name == scenario).requests


def _profile(
    target: servers.Target,
    pid: int,
    requests: list[Request],
    *,
    seconds: int,
    warmup: int,
    rate: int,
    native: bool,
) -> Profile:
    requests_file = wrk.write_requests(OUTPUT / "requests.tsv", requests)
    if warmup:
        wrk.run(target.base_url, requests_file, seconds=warmup, connections=CONNECTIONS, threads=1)
    with spy.start(pid, seconds=seconds, rate=rate, output=SAMPLES, native=native) as sampler:
        before = processes.cpu_seconds(pid)
        load = wrk.run(
            target.base_url, requests_file, seconds=seconds, connections=CONNECTIONS, threads=1
        )
        cpu = processes.cpu_seconds(pid) - before
        recording = spy.finish(sampler, SAMPLES)
    if not load.requests:
        raise SystemExit(f"wrk got no answer from {target.base_url}")
    return Profile(load, cpu, recording)


def _table(profile: Profile, layers: Layers) -> list[str]:
    counts = layers.tally(profile.recording.stacks)
    samples = profile.recording.samples or 1
    rows = ["| layer | modules | share of samples | CPU µs/request |", "|---|---|--:|--:|"]
    for layer, prefixes in [*LAYERS.items(), (OTHER, ())]:
        share = counts[layer] / samples
        modules = ", ".join(prefixes) or "-"
        rows.append(
            f"| {layer} | {modules} | {share:.1%} | {share * profile.cpu_us_per_request:.0f} |"
        )
    rows.append(f"| all | | 100.0% | {profile.cpu_us_per_request:.0f} |")
    return rows


def _target(
    port: int, redis_url: str | None, *, uncached: bool, source: Path | None
) -> servers.Target:
    if source is None:
        return (servers.uncached if uncached else servers.conduit)(port, 1, redis_url)
    target = servers.baseline(port, 1, source, redis_url)
    return (
        replace(target, env={**target.env, "CONDUIT_CACHE_ENABLED": "false"})
        if uncached
        else target
    )


@app.command()
def main(
    *,
    scale: Annotated[ScaleName, typer.Option(help="Dataset size.")] = ScaleName.TINY,
    paths: Annotated[
        list[str] | None,
        typer.Option("--path", help="A path to GET (repeatable: the requests rotate)."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(help=f"One of the harness's reads instead: {', '.join(READS)}."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis", help="A Redis URL for rate limits and cache, not memory."),
    ] = None,
    uncached: Annotated[
        bool, typer.Option("--uncached", help="The read cache off (CONDUIT_CACHE_ENABLED=false).")
    ] = False,
    seconds: Annotated[int, typer.Option(min=1, help="Seconds recorded under load.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Seconds of load before.")] = 2,
    rate: Annotated[int, typer.Option(min=1, max=1000, help="py-spy's samples a second.")] = 200,
    native: Annotated[
        bool, typer.Option("--native", help="Compiled code's frames too (uvloop, httptools).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the dataset.")] = 1,
    port: Annotated[int, typer.Option(help="Conduit's port.")] = 8770,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="A git ref: profile Conduit as of that commit (a step's before)."
        ),
    ] = None,
) -> None:
    """Profile one Conduit worker under wrk: the server's CPU per request, by layer."""
    if (scenario is None) == (not paths):
        raise typer.BadParameter("give --path (one or more) or --scenario, not both")
    if scenario is not None and scenario not in READS:
        raise typer.BadParameter(f"choose from {', '.join(READS)}", param_hint="--scenario")
    wrk.ensure_installed()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    prepared = database.prepare(scale.value, seed)
    if redis_url is not None:
        servers.clear_store(redis_url)
    checkout: AbstractContextManager[Path | None] = (
        nullcontext() if at is None else baseline.worktree(baseline.revision(at))
    )
    try:
        with checkout as source:
            target = _target(port, redis_url, uncached=uncached, source=source)
            with servers.running([target], database.server_env(prepared.url), OUTPUT) as pids:
                requests = _requests(prepared, target, paths or [], scenario)
                profile = _profile(
                    target,
                    pids[target.name],
                    requests,
                    seconds=seconds,
                    warmup=warmup,
                    rate=rate,
                    native=native,
                )
    finally:
        if redis_url is not None:
            servers.clear_store(redis_url)
    store = "in Redis" if redis_url else "in process memory"
    cache = "its cache off" if uncached else f"its cache {store}"
    sent = scenario or ", ".join(f"GET {path}" for path in paths or [])
    if at is not None:
        sent += f" as of {at}"
    load = profile.load
    print(
        f"\n{sent} (rotating over {len(dict.fromkeys(requests))} distinct requests) on one Conduit"
        f" worker at scale {scale.value}: JSON access log and metrics on, rate limits counted"
        f" {store}, {cache}\n"
        f"wrk -t1 -c{CONNECTIONS} for {seconds} s after {warmup} s of warm-up:"
        f" {load.rps:,.0f} req/s, {load.errors} errors\n"
        f"server CPU {profile.cpu_seconds:.2f} s for {load.requests:,} requests:"
        f" {profile.cpu_us_per_request:.0f} µs/request\n"
        f"py-spy at {rate}/s, busy samples only: {profile.recording.summary} ({SAMPLES})\n"
    )
    print("\n".join(_table(profile, Layers.of_this_interpreter())))


app()
