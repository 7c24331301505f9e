"""Prometheus metrics (docs/operations.md).

Under `conduit serve --workers N` the workers share nothing but the directory in
`PROMETHEUS_MULTIPROC_DIR`, which `conduit serve` creates for them: each process writes its
samples to its own files there, and a scrape, answered by any one worker, adds up every
process's (prometheus_client's multiprocess mode). The variable must be set before
prometheus_client is imported, which is why `conduit serve` sets it before starting the
workers.
"""

import os
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

# Seconds; a cached read takes about a millisecond, a sign-in (argon2) tens.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_DURATION = Histogram(
    "conduit_http_request_duration_seconds",
    "Requests by method, route template and status, and how long each took to answer.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
DB_POOL_IN_USE = Gauge(
    "conduit_db_pool_connections_in_use",
    "Write-pool connections checked out, over every live process.",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "conduit_db_pool_overflow_connections",
    "Write-pool connections in use beyond the pool's size, over every live process.",
    multiprocess_mode="livesum",
)
DB_READS = Counter(
    "conduit_db_reads",
    "Reads outside a write, by where they ran: a replica (host:port/database) or the primary. "
    "Counted only with replicas configured.",
    ["target"],
)
DB_REPLICA_FALLBACKS = Counter(
    "conduit_db_replica_fallbacks",
    "Reads sent to the primary rather than a replica, by reason: behind (no replica has "
    "replayed the caller's last write yet), unavailable (no replica up and within the lag "
    "bound), failed (a replica failed or timed out on the read), not_found (a replica found "
    "nothing, which only the primary may say).",
    ["reason"],
)
DB_REPLICA_LAG = Gauge(
    "conduit_db_replica_lag_seconds",
    "How far behind the primary each replica's replay was at its last check, as one process "
    "saw it (the largest over processes); +Inf while it does not answer.",
    ["replica"],
    multiprocess_mode="livemax",
)
CACHE_LOOKUPS = Counter(
    "conduit_cache_lookups",
    "Read-cache lookups by result: hit, miss, or bypass (the shared store unavailable).",
    ["result"],
)
RATE_LIMIT_DECISIONS = Counter(
    "conduit_rate_limit_decisions",
    "Rate-limit decisions by policy and decision (allowed, refused).",
    ["policy", "decision"],
)
JOB_RUNS = Counter(
    "conduit_job_runs",
    "Job runs by task and outcome (done, failed).",
    ["task", "outcome"],
)
JOB_DURATION = Histogram(
    "conduit_job_duration_seconds",
    "How long job runs took, by task.",
    ["task"],
    buckets=_LATENCY_BUCKETS,
)
JOB_QUEUE_LATENCY = Histogram(
    "conduit_job_queue_latency_seconds",
    "From when a job was due to when its first run started, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def job_runs() -> dict[str, int]:
    """This process's job runs so far, by outcome (`JOB_RUNS`)."""
    runs: dict[str, int] = {}
    for family in JOB_RUNS.collect():
        for sample in family.samples:
            if sample.name == "conduit_job_runs_total":
                outcome = sample.labels["outcome"]
                runs[outcome] = runs.get(outcome, 0) + int(sample.value)
    return runs


def registry() -> CollectorRegistry:
    """What a scrape of this process reports: every process's samples in multiprocess mode.
    Asked of the environment at each call: `conduit serve` names the directory after importing
    this module, then scrapes its workers' samples from its own process."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def process_exited() -> None:
    """Drop this process's live gauges from the sums (multiprocess mode)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def observe_pool(engine: AsyncEngine) -> None:
    """Keep the pool gauges current as connections are checked out and in."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return
    size = pool.size()
    in_use = 0

    def publish(change: int) -> None:
        nonlocal in_use
        in_use += change
        DB_POOL_IN_USE.set(in_use)
        DB_POOL_OVERFLOW.set(max(0, in_use - size))

    event.listen(pool, "checkout", lambda *_: publish(1))
    event.listen(pool, "checkin", lambda *_: publish(-1))


class _Values(Collector):
    """Values read at scrape time (from the database), reported once by the scraped process."""

    def __init__(self, families: Iterable[GaugeMetricFamily]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


def jobs_by_status(counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "conduit_jobs", "Jobs in the queue by status (queued, running, failed).", labels=["status"]
    )
    for status, count in sorted(counts.items()):
        family.add_metric([status], count)
    return family


def oldest_queued_age(seconds: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "conduit_jobs_oldest_queued_age_seconds",
        "How long the oldest queued job has waited since it was due (0 when none has).",
        value=seconds,
    )


def render(*scraped: GaugeMetricFamily) -> bytes:
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_Values(scraped))
    return generate_latest(registry()) + generate_latest(extra)
