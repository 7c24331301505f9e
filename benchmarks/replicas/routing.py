"""Part 2, the cost of routing: wrk's uncached reads, anonymous then signed in, against Conduit
on the primary, on the replica, without prepared statements and behind PgBouncer, in turns, with
the CPU per request of the server, the databases and Redis."""

import contextlib
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from tests.replication import PREPARED_STATEMENTS_SINCE

from benchmarks.harness import redis_counters
from benchmarks.load import wrk
from benchmarks.replicas.cluster import (
    LOGS,
    REQUEST_TIMEOUT_SECONDS,
    Setup,
    server_env,
    sign_in,
    target_for,
    uncached_reads,
)
from benchmarks.replicas.metrics import on_replica, scrape
from benchmarks.setup import processes, servers
from benchmarks.setup.servers import Target

CONNECTIONS = 32


@dataclass(frozen=True, slots=True)
class Trial:
    rps: float
    p99_ms: float
    errors: int
    server_us: float
    database_us: float
    redis_trips: float | None
    redis_us: float | None


@dataclass(frozen=True, slots=True)
class Meter:
    """CPU seconds of the server, the databases and Redis, and Redis's round trips, so far."""

    server: float
    databases: float
    redis_cpu: float
    redis_writes: int


def _meter(pid: int, setup: Setup, client: redis.Redis | None) -> Meter:
    databases = sum(processes.cpu_seconds(root) for root in setup.database_pids())
    if client is None:
        return Meter(processes.cpu_seconds(pid), databases, 0.0, 0)
    cpu = client.info("cpu")
    counts = redis_counters.read(client)
    used = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return Meter(processes.cpu_seconds(pid), databases, used, counts.writes)


def _trial(target: Target, pid: int, requests: Path, setup: Setup, seconds: int) -> Trial:
    with contextlib.ExitStack() as stack:
        client = None
        if setup.redis_url is not None:
            client = stack.enter_context(redis.Redis.from_url(setup.redis_url))
        before = _meter(pid, setup, client)
        result = wrk.run(
            target.base_url, requests, seconds=seconds, connections=CONNECTIONS, threads=1
        )
        after = _meter(pid, setup, client)
    served = max(result.requests, 1)
    # The two INFO replies of the reading that closes the trial and of this one's opening.
    trips = (after.redis_writes - before.redis_writes - 2) / served
    return Trial(
        rps=result.rps,
        p99_ms=result.p99_ms,
        errors=result.errors,
        server_us=(after.server - before.server) * 1e6 / served,
        database_us=(after.databases - before.databases) * 1e6 / served,
        redis_trips=None if client is None else trips,
        redis_us=None if client is None else (after.redis_cpu - before.redis_cpu) * 1e6 / served,
    )


def _same_answers(targets: list[Target], requests: list[wrk.Request]) -> None:
    """Before any timing: every target answers every request as the first does."""
    first, *others = targets
    with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for request in requests:
            answers = [
                client.get(target.base_url + request.path, headers=request.headers)
                for target in targets
            ]
            if any(answer.status_code != httpx.codes.OK for answer in answers):
                raise SystemExit(f"{request.path}: {[answer.text[:300] for answer in answers]}")
            for other, answer in zip(others, answers[1:], strict=True):
                if answer.json() != answers[0].json():
                    raise SystemExit(f"{first.name} and {other.name} disagree on {request.path}")


def _targets(setup: Setup, workers: int) -> list[Target]:
    primary, replica = setup.cluster.primary, setup.cluster.replica
    name = primary.database
    carried = setup.bouncers[0].version >= PREPARED_STATEMENTS_SINCE
    pooled = {
        "CONDUIT_DB_PREPARED_STATEMENTS": str(carried).lower(),
        "DATABASE_DIRECT_URL": primary.url,
        "DATABASE_URL": setup.bouncers[0].url(name),
    }
    envs: dict[str, dict[str, str]] = {
        "direct": {},
        "direct-replica": {"DATABASE_REPLICA_URLS": replica.url},
        "unprepared": {"CONDUIT_DB_PREPARED_STATEMENTS": "false"},
        "pgbouncer": pooled,
        "pgbouncer-replica": {**pooled, "DATABASE_REPLICA_URLS": setup.bouncers[1].url(name)},
    }
    if workers > 1 and setup.redis_url is None:
        # `conduit serve` turns replicas off: a writer's position would be one worker's.
        envs = {target: env for target, env in envs.items() if "DATABASE_REPLICA_URLS" not in env}
        print(f"({workers} workers without --redis: no replica targets)")
    return [target_for(setup, target, workers, env) for target, env in envs.items()]


def run(setup: Setup, workers: int, seconds: int, trials: int, warmup: int) -> None:
    targets = _targets(setup, workers)
    logs = LOGS / f"routing-{workers}"
    logs.mkdir(parents=True, exist_ok=True)
    with servers.running(targets, server_env(setup.cluster.primary.url), logs) as pids:
        token = sign_in(targets[0].base_url, setup.email)
        for load, signed_in in (("anonymous", None), ("signed in", token)):
            requests = uncached_reads(setup.slugs, signed_in)
            _same_answers(targets, requests)
            path = wrk.write_requests(logs / f"{load.replace(' ', '-')}.tsv", requests)
            for target in targets:
                wrk.run(target.base_url, path, seconds=warmup, connections=CONNECTIONS, threads=1)
            before = {target.name: scrape(target.base_url) for target in targets}
            measured: dict[str, list[Trial]] = {target.name: [] for target in targets}
            for number in range(trials):
                shift = number % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    trial = _trial(target, pids[target.name], path, setup, seconds)
                    measured[target.name].append(trial)
            where = {
                target.name: on_replica(before[target.name], scrape(target.base_url))
                for target in targets
            }
            print(_table(workers, load, measured, where), "\n", flush=True)


def _table(workers: int, load: str, measured: dict[str, list[Trial]], where: dict[str, str]) -> str:
    direct = measured["direct"]
    rows = [
        f"#### {workers} worker(s), {load} uncached reads",
        "",
        "| target | req/s | /direct | p99 ms | server µs/req | databases µs/req"
        " | Redis trips/req | Redis µs/req | on replica | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, trials in measured.items():
        ratio = statistics.median(t.rps / d.rps for t, d in zip(trials, direct, strict=True))
        rows.append(
            f"| {name} | {statistics.median(t.rps for t in trials):.0f} | {ratio:.3f}"
            f" | {statistics.median(t.p99_ms for t in trials):.1f}"
            f" | {statistics.median(t.server_us for t in trials):.0f}"
            f" | {statistics.median(t.database_us for t in trials):.0f}"
            f" | {_shown([t.redis_trips for t in trials], '.2f')}"
            f" | {_shown([t.redis_us for t in trials], '.0f')}"
            f" | {where[name]} | {sum(t.errors for t in trials)} |"
        )
    per_trial = "; ".join(
        f"{name} " + " ".join(f"{t.rps:.0f}" for t in trials) for name, trials in measured.items()
    )
    return "\n".join([*rows, "", f"req/s per trial: {per_trial}"])


def _shown(values: Sequence[float | None], spec: str) -> str:
    """The median of what was measured, or "-" (no Redis)."""
    known = [value for value in values if value is not None]
    return format(statistics.median(known), spec) if known else "-"
