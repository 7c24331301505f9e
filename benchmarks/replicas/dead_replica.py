"""Part 3, a dead replica: a Conduit reading from the replica under a light load while the
replica is stopped (connections refused), then paused (connections hang); how long until it is
reported down, what the clients saw, and how long until it serves again."""

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.replicas.cluster import LOGS, Setup, server_env, target_for, uncached_reads
from benchmarks.replicas.watch import FAULT_PAUSE_SECONDS, Watch, replica_ok, until, watching
from benchmarks.setup import servers
from benchmarks.setup.servers import Target

SLOW_SECONDS = 0.5
FAULT_CLIENTS = 4


@dataclass(frozen=True, slots=True)
class FaultRound:
    fault: str
    outage: float
    # From the fault: the first poll that said "down"; what the polls said until it came back.
    down_after: float
    states: Counter[str]
    # The requests sent from the fault until the replica served again.
    requests: int
    slow: int
    slowest: float
    not_2xx: int
    slowest_before: float
    # From the replica's return: the first poll that said "ok", the first of SETTLED_POLLS in a
    # row that did, and its read count rising.
    ok_after: float
    settled_after: float
    serving_after: float
    # The server's `replica_unavailable` events over the round, and the longest wait they set
    # before the replica's next check: each failure in a row doubles it.
    failures: int
    longest_retry: float


def _failures(log: Path, after_line: int) -> tuple[int, float]:
    events = [
        json.loads(line)
        for line in log.read_text(errors="replace").splitlines()[after_line:]
        if '"replica_unavailable"' in line
    ]
    return len(events), max((float(event["retry_in_seconds"]) for event in events), default=0.0)


async def _fault_round(
    watch: Watch, fault: str, inject: Callable[[], None], restore: Callable[[], None], outage: float
) -> FaultRound:
    await replica_ok(watch)
    logged = len(watch.log.read_text(errors="replace").splitlines())
    quiet_from = time.monotonic()
    await asyncio.sleep(2)
    fault_at = time.monotonic()
    await asyncio.to_thread(inject)
    await asyncio.sleep(outage)
    restore_at = time.monotonic()
    await asyncio.to_thread(restore)
    back_at = time.monotonic()
    settled_at = await until(lambda: watch.settled(back_at), "ok after the fault")
    serving_at = await until(lambda: watch.reads_rose_since(back_at), "reads on the replica")
    ok_at = watch.reported("ok", back_at) or settled_at
    first_down = watch.reported("down", fault_at) or math.nan
    sent = [a for a in watch.answers if fault_at <= a.started <= max(serving_at, settled_at)]
    before = [a.finished - a.started for a in watch.answers if quiet_from <= a.started < fault_at]
    durations = [a.finished - a.started for a in sent]
    failures, longest_retry = _failures(watch.log, logged)
    return FaultRound(
        fault=fault,
        outage=back_at - fault_at,
        down_after=first_down - fault_at,
        states=Counter(state for at, state in watch.states if fault_at < at < restore_at),
        requests=len(sent),
        slow=sum(duration > SLOW_SECONDS for duration in durations),
        slowest=max(durations, default=0.0),
        not_2xx=sum(a.status is None or not httpx.codes.is_success(a.status) for a in sent),
        slowest_before=max(before, default=0.0),
        ok_after=ok_at - back_at,
        settled_after=settled_at - back_at,
        serving_after=serving_at - back_at,
        failures=failures,
        longest_retry=longest_retry,
    )


def _shares(counts: Counter[str]) -> str:
    total = sum(counts.values())
    return ", ".join(f"{state} {count / total:.0%}" for state, count in counts.most_common())


async def _rounds(setup: Setup, target: Target, outage: float) -> list[FaultRound]:
    replica = setup.cluster.replica
    paths = [path.path for path in uncached_reads(setup.slugs, None)]
    async with watching(target, setup.replica_name, paths, FAULT_CLIENTS) as watch:
        refused = await _fault_round(
            watch, "stopped (refused)", replica.stop, replica.start, outage
        )
        paused = await _fault_round(
            watch, "paused (SIGSTOP)", replica.pause, replica.resume, outage
        )
        await asyncio.sleep(1)
    return [refused, paused]


def run(setup: Setup, workers: int, outage: float) -> None:
    env = {"DATABASE_REPLICA_URLS": setup.cluster.replica.url}
    target = target_for(
        setup, "dead-replica", workers, {**env, "CONDUIT_DB_REPLICA_TIMEOUT_SECONDS": "1"}
    )
    with servers.running([target], server_env(setup.cluster.primary.url), LOGS):
        rounds = asyncio.run(_rounds(setup, target, outage))
    print(
        f"#### A dead replica: {workers} worker(s), {FAULT_CLIENTS} clients reading without"
        f" cache, {FAULT_PAUSE_SECONDS * 1000:.0f} ms between requests; timeout 1 s\n\n"
        '| replica | out for s | "down" after s | polls while out | requests | > 0.5 s'
        ' | slowest s (before) | not 2xx | "ok" after s (every worker) | reads on it after s'
        " | failures logged (longest retry s) |\n"
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for r in rounds:
        print(
            f"| {r.fault} | {r.outage:.1f} | {r.down_after:.2f} | {_shares(r.states)}"
            f" | {r.requests} | {r.slow} | {r.slowest:.3f} ({r.slowest_before:.3f})"
            f" | {r.not_2xx} | {r.ok_after:.2f} ({r.settled_after:.2f}) | {r.serving_after:.2f}"
            f" | {r.failures} ({r.longest_retry:.1f}) |"
        )
    print(flush=True)
