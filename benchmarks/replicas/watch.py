"""A server watched under a light load (parts 3 and 4): its clients' answers, what each poll of
/health/ready said of the replica, and the replica's read count, each with its time."""

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.replicas.cluster import LOGS, REQUEST_TIMEOUT_SECONDS
from benchmarks.replicas.metrics import parse_counts
from benchmarks.setup.servers import Target

# Bounds on waiting for what takes a second or two; only something broken waits this long.
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.05
METRICS_POLL_SECONDS = 0.2
# Polls in a row, each on a fresh connection, after which every worker is taken to report the
# replica ok: one that did not would have answered one of them (but for a chance of 2^-20).
SETTLED_POLLS = 20
FAULT_PAUSE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Answer:
    started: float
    finished: float
    # None: no response (refused, reset, timed out).
    status: int | None


@dataclass
class Watch:
    """What a server's clients and observers saw, each with its monotonic time."""

    base_url: str
    replica: str
    log: Path
    answers: list[Answer] = field(default_factory=list)
    # The replica's state in /health/ready, as each poll's answer came.
    states: list[tuple[float, str]] = field(default_factory=list)
    # conduit_db_reads_total for the replica, over the workers.
    reads: list[tuple[float, float]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def reported(self, state: str, moment: float) -> float | None:
        """When a poll after `moment` first answered `state`."""
        return next((at for at, seen in self.states if at > moment and seen == state), None)

    def settled(self, moment: float) -> float | None:
        """When the first of SETTLED_POLLS polls in a row after `moment` answered "ok"."""
        run: list[float] = []
        for at, state in self.states:
            if at > moment:
                run = [*run, at] if state == "ok" else []
                if len(run) == SETTLED_POLLS:
                    return run[0]
        return None

    def reads_rose_since(self, moment: float) -> float | None:
        """When the replica's read count was first seen above its last count before `moment`."""
        before = [count for at, count in self.reads if at <= moment]
        start = before[-1] if before else 0.0
        return next((at for at, count in self.reads if at > moment and count > start), None)


def server_client(base_url: str, *, fresh: bool = False) -> httpx.AsyncClient:
    # A fresh connection per request lands on any worker: each process has its own view.
    limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()
    return httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False, limits=limits
    )


async def _read_loop(watch: Watch, paths: list[str], number: int) -> None:
    async with server_client(watch.base_url, fresh=True) as client:
        for path in itertools.islice(itertools.cycle(paths), number, None):
            if watch.stopping.is_set():
                return
            started = time.monotonic()
            try:
                status: int | None = (await client.get(path)).status_code
            except httpx.TransportError:
                status = None
            watch.answers.append(Answer(started, time.monotonic(), status))
            await asyncio.sleep(FAULT_PAUSE_SECONDS)


async def _poll_states(watch: Watch) -> None:
    async with server_client(watch.base_url, fresh=True) as client:
        while not watch.stopping.is_set():
            try:
                checks = (await client.get("/health/ready")).json().get("checks", {})
                state = str(checks.get("replicas", {}).get(watch.replica, "absent"))
            except httpx.TransportError:
                state = "no answer"
            watch.states.append((time.monotonic(), state))
            await asyncio.sleep(POLL_SECONDS)


async def _poll_reads(watch: Watch) -> None:
    async with server_client(watch.base_url) as client:
        while not watch.stopping.is_set():
            try:
                counts = parse_counts((await client.get("/metrics")).text)
            except httpx.TransportError:
                counts = {}
            if ("reads", watch.replica) in counts:
                watch.reads.append((time.monotonic(), counts["reads", watch.replica]))
            await asyncio.sleep(METRICS_POLL_SECONDS)


@contextlib.asynccontextmanager
async def watching(
    target: Target, replica: str, paths: list[str], clients: int
) -> AsyncIterator[Watch]:
    watch = Watch(target.base_url, replica, LOGS / f"{target.name}.log")
    tasks = [asyncio.create_task(_read_loop(watch, paths, n)) for n in range(clients)]
    tasks += [asyncio.create_task(_poll_states(watch)), asyncio.create_task(_poll_reads(watch))]
    try:
        yield watch
    finally:
        watch.stopping.set()
        await asyncio.gather(*tasks)


async def until(seen: Callable[[], float | None], what: str) -> float:
    """When `seen` says (polled) something happened; SystemExit past the bound."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (moment := seen()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"waited {WAIT_SECONDS:g} s for {what}")
        await asyncio.sleep(POLL_SECONDS / 2)
    return moment


async def replica_ok(watch: Watch) -> None:
    now = time.monotonic()
    await until(lambda: watch.reported("ok", now), "the replica to be reported ok")
