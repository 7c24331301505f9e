"""Soak: the mixed workload at a fixed share of Conduit's capacity for minutes on end, and whether
it stays healthy.

One `conduit serve` on the harness's seeded PostgreSQL database (benchmarks.setup.database),
set up as `./dev bench` sets up its Conduit target. First its capacity: the mixed workload's
req/s under wrk's closed loop (one trial, after a warm-up). Then the same requests open-loop
(benchmarks.load.loadgen) at `--load` times that rate, without a pause: a warm-up, then
`--minutes` in windows of `--window` seconds. Each window is reported with its requests, answers
a second, errors, latency from the scheduled start, the resident memory of the server's process
tree at its end, the server's CPU per request and how busy the machine was. The mixed workload's
writes are undone afterwards.

The soak passes when all of these hold (the exit status is 1 otherwise):
- errors: none, warm-up included: every response 2xx (the workload expects no other status), no
  connection error, no request without an answer within 10 s;
- memory: the server's RSS (the sum over its processes) grows by less than 10% from the end of
  the first window after the warm-up to the end of the last, and so does each process's;
- latency: the p99 is stable, meaning the median p99 of the last third of the windows is at
  most 1.5 times the median p99 of the first third (with fewer than three windows, the last
  window's against the first's);
- pace: every window after the warm-up served at least 95% of the requested rate, its requests
  over the time from its start to its last answer, so that the load was the one asked for (a
  server that falls behind queues, and its p99 is the queue's).

    .tools/bin/uv run --group bench python -m benchmarks.soak [--minutes 10] [--workers 1]
        [--load 0.7] [--redis redis://127.0.0.1:6379/0]

See docs/benchmarks.md ("Soak").
"""

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.harness import scenarios, trials
from benchmarks.harness.trials import KIB_PER_MIB, Load
from benchmarks.load import loadgen, wrk
from benchmarks.load.loadgen import RateResult
from benchmarks.setup import SCRATCH, database, processes, servers
from conduit.seed import ScaleName

LOGS = SCRATCH / "soak"
MAX_RSS_GROWTH = 0.10
MAX_P99_DRIFT = 1.5
# A window served below this share of the target rate had stragglers a twentieth of its length
# after its end: answers fell behind the schedule.
MIN_ACHIEVED_SHARE = 0.95
SECONDS_PER_MINUTE = 60

app = typer.Typer(add_completion=False)


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    ends_at: float
    result: RateResult
    # VmRSS of each process of the server's tree at the end of the window, by pid.
    rss_kib: dict[int, int]
    server_cpu_us_per_request: float
    # The machine's busy share (the server, the generator, PostgreSQL, anything else): near
    # 100%, the window measured the neighbours as much as the server.
    host_busy: float

    @property
    def rss_mib(self) -> float:
        return sum(self.rss_kib.values()) / KIB_PER_MIB


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def _capacity(
    mixed: scenarios.Scenario, target: servers.Target, pids: dict[str, int], load: Load
) -> float:
    requests_file = LOGS / "mixed.tsv"
    summary = trials.scenario(mixed, {target.name: target}, pids, requests_file, load)
    result = summary.targets[target.name]
    if result.errors:
        print(f"warning: {result.errors} errors while measuring capacity", file=sys.stderr)
    return result.rps


@dataclass(frozen=True, slots=True)
class Reading:
    server_cpu_seconds: float
    host_busy_ticks: int
    host_ticks: int


def _read(root: int) -> Reading:
    # /proc/stat's first line: the time all CPUs spent in each state; idle and iowait are 4th, 5th.
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return Reading(processes.cpu_seconds(root), sum(ticks) - ticks[3] - ticks[4], sum(ticks))


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), SECONDS_PER_MINUTE)
    return f"{minutes}:{rest:02}"


HEADER = (
    f"{'window':<8} {'from-to':>11} {'requests':>9} {'req/s':>7} {'errors':>6}"
    f" {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8} {'RSS MiB':>8} {'largest':>8}"
    f" {'procs':>5} {'CPU us/req':>10} {'host busy':>9} {'gen CPU':>7}"
)


def _row(window: Window, length: float) -> str:
    result = window.result
    largest = max(window.rss_kib.values()) / KIB_PER_MIB
    span = f"{_clock(window.ends_at - length)}-{_clock(window.ends_at)}"
    return (
        f"{window.label:<8} {span:>11} {result.requests:>9,} {result.achieved_rps:>7.0f}"
        f" {result.errors:>6} {result.p50_ms:>7.1f} {result.p99_ms:>7.1f} {result.max_ms:>8.1f}"
        f" {window.rss_mib:>8.1f} {largest:>8.1f} {len(window.rss_kib):>5}"
        f" {window.server_cpu_us_per_request:>10.0f} {window.host_busy:>9.0%}"
        f" {result.generator_cpu_seconds / length:>7.0%}"
    )


def _soak(
    target: servers.Target,
    root: int,
    requests: list[wrk.Request],
    *,
    rate: float,
    lengths: list[float],
    warmups: int,
) -> list[Window]:
    windows: list[Window] = []
    readings = [_read(root)]

    def record(result: RateResult) -> None:
        number = len(windows)
        label = "warm-up" if number < warmups else str(number - warmups + 1)
        sizes = {pid: processes.rss_kib(pid) for pid in processes.process_tree(root)}
        before, after = readings[-1], _read(root)
        readings.append(after)
        window = Window(
            label,
            sum(lengths[: number + 1]),
            result,
            sizes,
            server_cpu_us_per_request=(after.server_cpu_seconds - before.server_cpu_seconds)
            * 1e6
            / result.requests,
            host_busy=(after.host_busy_ticks - before.host_busy_ticks)
            / (after.host_ticks - before.host_ticks),
        )
        windows.append(window)
        print(_row(window, lengths[number]), flush=True)

    print(HEADER, flush=True)
    loadgen.run_windows(target.base_url, requests, rate=rate, windows=lengths, on_window=record)
    return windows


def _growth(before: float, after: float) -> float:
    return after / before - 1


def _memory(first: Window, last: Window) -> Check:
    total = _growth(first.rss_mib, last.rss_mib)
    shared = sorted(first.rss_kib.keys() & last.rss_kib.keys())
    growths = {pid: _growth(first.rss_kib[pid], last.rss_kib[pid]) for pid in shared}
    worst = max(growths, key=lambda pid: growths[pid])
    detail = (
        f"{first.rss_mib:.1f} MiB (window {first.label}) -> {last.rss_mib:.1f} MiB (window"
        f" {last.label}): {total:+.1%}; the most of one process {growths[worst]:+.1%}"
        f" (pid {worst}); must stay below {MAX_RSS_GROWTH:+.0%}"
    )
    if first.rss_kib.keys() != last.rss_kib.keys():
        detail += "; the server's processes changed during the soak"
    passed = total < MAX_RSS_GROWTH and growths[worst] < MAX_RSS_GROWTH
    return Check("memory", passed, detail)


def _latency(judged: list[Window]) -> Check:
    p99s = [window.result.p99_ms for window in judged]
    third = max(1, len(judged) // 3)
    early, late = statistics.median(p99s[:third]), statistics.median(p99s[-third:])
    drift = late / early
    compared = (
        f"window {judged[0].label} against {judged[-1].label}"
        if third == 1
        else f"median of windows {judged[0].label}-{judged[third - 1].label} against"
        f" {judged[-third].label}-{judged[-1].label}"
    )
    detail = (
        f"p99 {early:.1f} -> {late:.1f} ms ({compared}): {drift:.2f}x, at most"
        f" {MAX_P99_DRIFT}x; first {p99s[0]:.1f} ms, last {p99s[-1]:.1f} ms, highest/lowest"
        f" {max(p99s) / min(p99s):.2f}x"
    )
    return Check("latency", drift <= MAX_P99_DRIFT, detail)


def _pace(judged: list[Window], rate: float) -> Check:
    slowest = min(judged, key=lambda window: window.result.achieved_rps)
    share = slowest.result.achieved_rps / rate
    detail = (
        f"the slowest window ({slowest.label}) served {slowest.result.achieved_rps:.0f} of"
        f" {rate:.0f} req/s ({share:.0%}); at least {MIN_ACHIEVED_SHARE:.0%}, else the load was"
        " not the one asked for"
    )
    return Check("pace", share >= MIN_ACHIEVED_SHARE, detail)


def _checks(windows: list[Window], warmups: int, rate: float) -> list[Check]:
    errors = sum(window.result.errors for window in windows)
    requests = sum(window.result.requests for window in windows)
    judged = windows[warmups:]
    return [
        Check("errors", errors == 0, f"{errors} of {requests:,} requests, warm-up included"),
        _memory(judged[0], judged[-1]),
        _latency(judged),
        _pace(judged, rate),
    ]


@dataclass(frozen=True, slots=True)
class Soak:
    capacity_rps: float
    rate: float
    windows: list[Window]


def _run(
    target: servers.Target,
    prepared: database.Prepared,
    *,
    capacity_load: Load,
    share: float,
    lengths: list[float],
    warmups: int,
) -> Soak:
    env = database.server_env(prepared.url)
    with servers.running([target], env, LOGS) as pids:
        fixtures = database.fixtures(prepared)
        tokens = scenarios.tokens(target.base_url, fixtures.reader_emails)
        built = scenarios.build(fixtures, tokens, (target.name,))
        mixed = next(scenario for scenario in built if scenario.name == "mixed")
        try:
            started = time.monotonic()
            capacity = _capacity(mixed, target, pids, capacity_load)
            print(f"capacity measured in {time.monotonic() - started:.0f} s", flush=True)
            # The writes wrk sent last may still be running.
            time.sleep(trials.SETTLE_SECONDS)
            rate = share * capacity
            print(f"soak at {rate:.0f} req/s ({share:.0%} of {capacity:.0f})", flush=True)
            started = time.monotonic()
            windows = _soak(
                target,
                pids[target.name],
                mixed.requests,
                rate=rate,
                lengths=lengths,
                warmups=warmups,
            )
            print(f"soak ran {time.monotonic() - started:.0f} s", flush=True)
        finally:
            time.sleep(trials.SETTLE_SECONDS)
            database.restore(prepared.url, fixtures)
    return Soak(capacity, rate, windows)


@app.command()
def main(
    *,
    minutes: Annotated[
        float, typer.Option(min=0.1, help="Minutes judged, after the warm-up.")
    ] = 10,
    window: Annotated[float, typer.Option(min=1, help="Seconds per reported window.")] = 60,
    warmup: Annotated[
        float, typer.Option(min=0, help="Seconds at the soak's rate before the judged windows.")
    ] = 60,
    load: Annotated[
        float, typer.Option(min=0.01, max=1, help="The soak's rate, as a share of capacity.")
    ] = 0.7,
    workers: Annotated[int, typer.Option(min=1, help="Conduit's worker processes.")] = 1,
    capacity_seconds: Annotated[
        int, typer.Option(min=1, help="Seconds of wrk that measure capacity.")
    ] = 20,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections.")] = 32,
    scale: Annotated[ScaleName, typer.Option(help="Dataset size.")] = ScaleName.SMALL,
    seed: Annotated[int, typer.Option(help="Seed of the dataset.")] = 1,
    port: Annotated[int, typer.Option(help="Conduit's port.")] = 8780,
    redis_url: Annotated[
        str | None,
        typer.Option("--redis", help="A Redis URL for rate limits and cache, not memory."),
    ] = None,
) -> None:
    """The mixed workload at a share of capacity: errors, memory and p99 over time."""
    count = round(minutes * SECONDS_PER_MINUTE / window)
    if count < 2:  # noqa: PLR2004 - a first and a last window to compare
        raise typer.BadParameter("at least two windows: more minutes or a shorter window")
    wrk.ensure_installed()
    LOGS.mkdir(parents=True, exist_ok=True)
    prepared = database.prepare(scale.value, seed)
    target = servers.conduit(port, workers, redis_url)
    warmups = 1 if warmup else 0
    if redis_url is not None:
        servers.clear_store(redis_url)
    try:
        soak = _run(
            target,
            prepared,
            capacity_load=Load(capacity_seconds, 2, 1, connections, 1),
            share=load,
            lengths=[warmup] * warmups + [window] * count,
            warmups=warmups,
        )
    finally:
        if redis_url is not None:
            servers.clear_store(redis_url)
    if servers.refused_connections([target], LOGS):
        print("warning: PostgreSQL refused connections (counted as errors)", file=sys.stderr)
    print(
        f"\ncapacity {soak.capacity_rps:.0f} req/s (mixed, wrk -c{connections},"
        f" {capacity_seconds} s); soak at {soak.rate:.0f} req/s ({load:.0%}), {workers}"
        f" worker(s); server log {LOGS / 'conduit.log'}"
    )
    checks = _checks(soak.windows, warmups, soak.rate)
    for check in checks:
        print(f"{check.name:<8} {'pass' if check.passed else 'FAIL'}  {check.detail}")
    passed = all(check.passed for check in checks)
    print("soak passed" if passed else "soak FAILED")
    raise typer.Exit(0 if passed else 1)


if __name__ == "__main__":
    app()
