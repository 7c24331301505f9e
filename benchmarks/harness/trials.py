"""Trials: the targets take turns in rotating order, and each ratio of a scenario (Conduit/floor,
with a baseline baseline/floor and Conduit/baseline, with the uncached target uncached/floor and
Conduit/uncached) is the median of the ratios of the trials run side by side."""

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from benchmarks.harness import redis_counters
from benchmarks.harness.redis_counters import RedisCounts
from benchmarks.harness.scenarios import Scenario
from benchmarks.load import wrk
from benchmarks.setup.processes import RssSampler, cpu_seconds
from benchmarks.setup.servers import Target

KIB_PER_MIB = 1024
# What wrk sent last may still be running when it returns (argon2 work the logins queued, the
# mixed workload's last writes): what comes next waits this long.
SETTLE_SECONDS = 5
RATIOS = (
    ("conduit", "floor"),
    ("baseline", "floor"),
    ("conduit", "baseline"),
    ("uncached", "floor"),
    ("conduit", "uncached"),
    ("quiet", "floor"),
    ("conduit", "quiet"),
)


@dataclass(frozen=True, slots=True)
class Load:
    seconds: int
    warmup_seconds: int
    trials: int
    connections: int
    threads: int


@dataclass(frozen=True, slots=True)
class Trial:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: int
    # The server's own CPU time (its whole process tree) per request served: what a change to a
    # CPU-bound server moves, steadier than req/s on a machine shared with the load generator.
    cpu_us_per_request: float
    peak_rss_mib: float
    peak_process_rss_mib: float
    processes: int
    # With a shared store, from Redis's counters over the trial (`redis_counts`): its replies
    # written per request served, one per round trip; the rate limiter's scripts per request;
    # the share of cache lookups (MGET) that did not rebuild an entry (SET), approximately.
    redis_round_trips_per_request: float | None
    redis_scripts_per_request: float | None
    cache_hit_rate: float | None
    redis_counts: RedisCounts | None


@dataclass(frozen=True, slots=True)
class TargetSummary:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float
    peak_rss_mib: float
    peak_process_rss_mib: float
    processes: int
    redis_round_trips_per_request: float | None
    redis_scripts_per_request: float | None
    cache_hit_rate: float | None
    trials: list[Trial]


@dataclass(frozen=True, slots=True)
class Ratio:
    trials: list[float]
    median: float


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    name: str
    title: str
    targets: dict[str, TargetSummary]
    # Keyed "numerator/denominator", for the pairs of RATIOS that both took part.
    ratios: dict[str, Ratio]


def verify_same_json(scenario: Scenario, targets: Mapping[str, Target]) -> None:
    """Before any timing: every distinct request gets equal parsed JSON from every target."""
    first, *others = scenario.targets
    for request in dict.fromkeys(scenario.requests):
        bodies = {
            name: httpx.request(
                request.method, targets[name].base_url + request.path, headers=request.headers
            )
            for name in scenario.targets
        }
        if any(body.status_code != httpx.codes.OK for body in bodies.values()):
            texts = {name: body.text for name, body in bodies.items()}
            raise SystemExit(f"{scenario.name}: {request.path} failed: {texts}")
        for other in others:
            if bodies[other].json() != bodies[first].json():
                raise SystemExit(
                    f"{scenario.name}: {first} and {other} disagree on {request.path}:\n"
                    f"{first}: {bodies[first].text[:2000]}\n{other}: {bodies[other].text[:2000]}"
                )


def _trial(target: Target, pid: int, requests_file: Path, load: Load) -> Trial:
    redis_url = target.env.get("REDIS_URL")
    if redis_url is None:
        return _measured(target, pid, requests_file, load, None)
    # One connection reads the counters before and after: opening one costs Redis replies too.
    with redis.Redis.from_url(redis_url) as client:
        return _measured(target, pid, requests_file, load, client)


def _measured(
    target: Target, pid: int, requests_file: Path, load: Load, client: redis.Redis | None
) -> Trial:
    redis_before = None if client is None else redis_counters.read(client)
    cpu_before = cpu_seconds(pid)
    with RssSampler(pid) as rss:
        result = wrk.run(
            target.base_url,
            requests_file,
            seconds=load.seconds,
            connections=load.connections,
            threads=load.threads,
        )
    cpu = cpu_seconds(pid) - cpu_before
    counts = (
        None
        if client is None or redis_before is None
        else redis_counters.since(client, redis_before)
    )
    return Trial(
        rps=result.rps,
        p50_ms=result.p50_ms,
        p90_ms=result.p90_ms,
        p99_ms=result.p99_ms,
        max_ms=result.max_ms,
        requests=result.requests,
        errors=result.errors,
        cpu_us_per_request=cpu * 1e6 / result.requests if result.requests else math.nan,
        peak_rss_mib=rss.peak_total_kib / KIB_PER_MIB,
        peak_process_rss_mib=rss.peak_process_kib / KIB_PER_MIB,
        processes=rss.processes,
        redis_round_trips_per_request=(
            None if counts is None else redis_counters.per_request(counts.writes, result.requests)
        ),
        redis_scripts_per_request=(
            None if counts is None else redis_counters.per_request(counts.scripts, result.requests)
        ),
        cache_hit_rate=None if counts is None else redis_counters.hit_rate(counts, result.requests),
        redis_counts=counts,
    )


def _summary(trials: list[Trial]) -> TargetSummary:
    return TargetSummary(
        rps=statistics.median(trial.rps for trial in trials),
        p50_ms=statistics.median(trial.p50_ms for trial in trials),
        p99_ms=statistics.median(trial.p99_ms for trial in trials),
        errors=sum(trial.errors for trial in trials),
        cpu_us_per_request=statistics.median(trial.cpu_us_per_request for trial in trials),
        peak_rss_mib=max(trial.peak_rss_mib for trial in trials),
        peak_process_rss_mib=max(trial.peak_process_rss_mib for trial in trials),
        processes=max(trial.processes for trial in trials),
        redis_round_trips_per_request=_median_or_none(
            [trial.redis_round_trips_per_request for trial in trials]
        ),
        redis_scripts_per_request=_median_or_none(
            [trial.redis_scripts_per_request for trial in trials]
        ),
        cache_hit_rate=_median_or_none([trial.cache_hit_rate for trial in trials]),
        trials=trials,
    )


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _rotated(names: tuple[str, ...], shift: int) -> tuple[str, ...]:
    shift %= len(names)
    return names[shift:] + names[:shift]


def _ratio(tops: list[Trial], bottoms: list[Trial]) -> Ratio:
    """A trial whose denominator served nothing has no ratio (NaN), and no say in the median."""
    pairs = zip(tops, bottoms, strict=True)
    per_trial = [top.rps / bottom.rps if bottom.rps else math.nan for top, bottom in pairs]
    defined = [ratio for ratio in per_trial if not math.isnan(ratio)]
    return Ratio(per_trial, statistics.median(defined) if defined else math.nan)


def _ratios(trials: Mapping[str, list[Trial]]) -> dict[str, Ratio]:
    return {
        f"{top}/{bottom}": _ratio(trials[top], trials[bottom])
        for top, bottom in RATIOS
        if top in trials and bottom in trials
    }


def _redis_line(trial: Trial) -> str:
    if trial.redis_round_trips_per_request is None:
        return ""
    hits = "" if trial.cache_hit_rate is None else f"  cache hits {trial.cache_hit_rate:.1%}"
    return f"  redis {trial.redis_round_trips_per_request:.2f} round trips/req{hits}"


def scenario(
    chosen: Scenario,
    targets: Mapping[str, Target],
    pids: Mapping[str, int],
    requests_file: Path,
    load: Load,
) -> ScenarioResult:
    wrk.write_requests(requests_file, chosen.requests)
    for name in chosen.targets if load.warmup_seconds else ():
        warmup = Load(load.warmup_seconds, 0, 1, load.connections, load.threads)
        _trial(targets[name], pids[name], requests_file, warmup)
    trials: dict[str, list[Trial]] = {name: [] for name in chosen.targets}
    for number in range(load.trials):
        for name in _rotated(chosen.targets, number):
            trial = _trial(targets[name], pids[name], requests_file, load)
            trials[name].append(trial)
            print(
                f"  {chosen.name:<10} {name:<8} trial {number + 1}: {trial.rps:8.1f} rps"
                f"  p50 {trial.p50_ms:7.1f} ms  p99 {trial.p99_ms:7.1f} ms"
                f"  cpu {trial.cpu_us_per_request:5.0f} us/req  errors {trial.errors}"
                f"  rss {trial.peak_rss_mib:.0f} MiB{_redis_line(trial)}",
                flush=True,
            )
    return ScenarioResult(
        name=chosen.name,
        title=chosen.title,
        targets={name: _summary(runs) for name, runs in trials.items()},
        ratios=_ratios(trials),
    )
