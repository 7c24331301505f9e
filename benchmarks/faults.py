"""Faults under load: what clients of a real `conduit serve` see while its database or its Redis
fails, and after.

Each scenario runs on loopback against a PostgreSQL cluster (and a Redis) of its own that it
creates in a temporary directory (benchmarks.setup), loads Conduit with client tasks that read
and write without pause, injects one fault for a few seconds, and lets the load run on after
it. It prints, per phase (before the fault, during it, after it), the requests by status; the
requests that had no response; how long after the fault a request last failed; what the server
logged (one-line reports, tracebacks); and how many acknowledged writes the database holds
afterwards.

    .tools/bin/uv run python -m benchmarks.faults [--scenario db-restart] [--workers 1]

- `db-restart`: PostgreSQL stopped (`pg_ctl stop -m fast`), down for `--outage` seconds, started.
- `redis-restart`: the Redis that holds rate limits and the read cache stopped, then started.
- `slow-db`: the articles table locked (ACCESS EXCLUSIVE) from another connection, so that
  every statement that touches it waits.
- `pool-exhausted`: the same lock with small pools and more clients than connections.

See docs/operations.md ("Faults under load") for the numbers.
"""

import asyncio
import contextlib
import itertools
import json
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import asyncpg
import httpx
import typer

from benchmarks.setup import SCRATCH, database, processes, servers
from benchmarks.setup.postgres import Cluster, StopMode, private_cluster
from benchmarks.setup.redis_server import PrivateRedis, private_redis

# Longer than any bound Conduit puts on a request: a client that waits this long saw a hang.
REQUEST_TIMEOUT_SECONDS = 30.0
PAGE_SIZE = 100

app = typer.Typer(add_completion=False)


class Scenario(StrEnum):
    DB_RESTART = "db-restart"
    REDIS_RESTART = "redis-restart"
    SLOW_DB = "slow-db"
    POOL_EXHAUSTED = "pool-exhausted"


# The load ----------------------------------------------------------------------------------


Kind = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    started: float
    finished: float
    status: int | None = None
    # A 503 in the API's error shape with `Retry-After`.
    well_formed: bool = True
    # What happened instead of a response: "no response" (closed or reset), "refused",
    # "timeout".
    failure: str | None = None
    title: str | None = None


def _failure(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        return "refused"
    return "no response"


def _well_formed(response: httpx.Response) -> bool:
    if response.status_code != httpx.codes.SERVICE_UNAVAILABLE:
        return True
    try:
        body = response.json()
    except json.JSONDecodeError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, dict) and bool(errors) and "retry-after" in response.headers


@dataclass
class Load:
    """Readers and writers sending requests one after another, without pause, until stopped."""

    base_url: str
    token: str
    slug: str
    readers: int
    writers: int
    outcomes: list[Outcome] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self._read(number)) for number in range(self.readers)]
        tasks += [asyncio.create_task(self._write(number)) for number in range(self.writers)]
        try:
            yield
        finally:
            self._stopping.set()
            await asyncio.gather(*tasks)

    async def _send(
        self, client: httpx.AsyncClient, kind: Kind, request: httpx.Request, title: str | None
    ) -> None:
        started = time.monotonic()
        try:
            response = await client.send(request)
        except httpx.TransportError as error:
            outcome = Outcome(kind, started, time.monotonic(), failure=_failure(error), title=title)
        else:
            outcome = Outcome(
                kind,
                started,
                time.monotonic(),
                status=response.status_code,
                well_formed=_well_formed(response),
                title=title,
            )
        self.outcomes.append(outcome)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False
        )

    async def _read(self, number: int) -> None:
        paths = ("/api/articles?limit=10", f"/api/articles/{self.slug}", "/api/tags")
        async with self._client() as client:
            for path in itertools.islice(itertools.cycle(paths), number, None):
                if self._stopping.is_set():
                    return
                await self._send(client, "read", client.build_request("GET", path), None)

    async def _write(self, number: int) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        async with self._client() as client:
            for sequence in itertools.count():
                if self._stopping.is_set():
                    return
                title = f"fault {number} {sequence}"
                article = {"title": title, "description": "d", "body": "b", "tagList": ["fault"]}
                request = client.build_request(
                    "POST", "/api/articles", json={"article": article}, headers=headers
                )
                await self._send(client, "write", request, title)


# A run -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """How a scenario loads Conduit and for how long."""

    title: str
    readers: int
    writers: int
    before_seconds: float
    fault_seconds: float
    after_seconds: float
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Window:
    started: float = float("inf")
    ended: float = float("inf")


Phase = Literal["before", "during", "after"]
PHASES: tuple[Phase, ...] = ("before", "during", "after")


def _phase(outcome: Outcome, window: Window) -> Phase:
    """Before: answered before the fault began; after: sent once it had ended."""
    if outcome.finished < window.started:
        return "before"
    if outcome.started < window.ended:
        return "during"
    return "after"


def _label(outcome: Outcome) -> str:
    if outcome.status is None:
        return outcome.failure or "?"
    if outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR:
        return str(outcome.status)
    return f"{outcome.status // 100}xx"


@dataclass(frozen=True, slots=True)
class LogCounts:
    lines: int
    database_reports: int
    store_reports: int
    tracebacks: int
    errors: int
    not_json: int


def _log_counts(log: Path) -> LogCounts:
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        counts["lines"] += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            counts["not_json"] += 1
            counts["tracebacks"] += line.startswith("Traceback")
            continue
        event = str(record.get("event", ""))
        counts["database_reports"] += event.startswith("database_unavailable")
        counts["store_reports"] += event.startswith("shared_store_unavailable")
        counts["tracebacks"] += "exception" in record
        counts["errors"] += record.get("level") in {"error", "critical"}
    return LogCounts(
        lines=counts["lines"],
        database_reports=counts["database_reports"],
        store_reports=counts["store_reports"],
        tracebacks=counts["tracebacks"],
        errors=counts["errors"],
        not_json=counts["not_json"],
    )


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    shape: Shape
    workers: int
    outcomes: list[Outcome]
    window: Window
    log: LogCounts
    acknowledged: set[str]
    found: set[str]

    def phase(self, phase: Phase) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if _phase(outcome, self.window) == phase]

    def table(self) -> str:
        labels = sorted({_label(outcome) for outcome in self.outcomes})
        header = ["phase", "kind", *labels, "p50 s", "max s"]
        rows = [header, ["---"] * len(header)]
        for phase, kind in itertools.product(PHASES, ("read", "write")):
            chosen = [outcome for outcome in self.phase(phase) if outcome.kind == kind]
            counted = Counter(_label(outcome) for outcome in chosen)
            durations = sorted(outcome.finished - outcome.started for outcome in chosen) or [0.0]
            rows.append(
                [
                    phase,
                    kind,
                    *(str(counted[label]) for label in labels),
                    f"{statistics.median(durations):.3f}",
                    f"{durations[-1]:.3f}",
                ]
            )
        return "\n".join("| " + " | ".join(row) + " |" for row in rows)

    def recovered_after(self) -> float:
        """Seconds from the fault's end to the end of the last request sent after it that
        failed; 0 when none did."""
        failed = [
            outcome.finished - self.window.ended
            for outcome in self.phase("after")
            if outcome.status is None or outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR
        ]
        return max(failed, default=0.0)

    def failed_once_recovered(self) -> list[Outcome]:
        """Requests sent after the first success that followed the fault and failed: once the
        service has answered one, every later request should succeed, however slow the
        machine."""
        recovered = self.window.ended + self.first_success_after()
        return [
            outcome
            for outcome in self.outcomes
            if outcome.started > recovered
            and (outcome.status is None or outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR)
        ]

    def first_success_after(self) -> float:
        """Seconds from the fault's end to the first request answered with success after it."""
        return min(
            (
                outcome.finished - self.window.ended
                for outcome in self.outcomes
                if outcome.finished > self.window.ended
                and outcome.status is not None
                and outcome.status < httpx.codes.MULTIPLE_CHOICES
            ),
            default=float("nan"),
        )

    def report(self) -> str:
        unavailable = [o for o in self.outcomes if o.status == httpx.codes.SERVICE_UNAVAILABLE]
        waits = sorted(outcome.finished - outcome.started for outcome in unavailable)
        waited = (
            f"answered after {waits[0]:.2f} s to {waits[-1]:.2f} s"
            f" (median {statistics.median(waits):.2f} s)"
            if waits
            else "none"
        )
        lost = sorted(self.acknowledged - self.found)
        log = self.log
        settings = ", ".join(f"{name}={value}" for name, value in self.shape.env.items())
        lines = [
            f"## {self.scenario}: {self.shape.title}, {self.workers} worker(s)",
            f"{self.shape.readers} readers and {self.shape.writers} writer(s); fault for "
            f"{self.window.ended - self.window.started:.1f} s; {settings or 'default settings'}",
            "",
            self.table(),
            "",
            f"- 503s: {len(unavailable)}, {waited};"
            f" {sum(not o.well_formed for o in unavailable)} not in the error shape with"
            " Retry-After",
            f"- after the fault: first success {self.first_success_after():.2f} s after it ended,"
            f" last failure {self.recovered_after():.2f} s after (0: none)",
            f"- server log: {log.lines} lines; {log.database_reports} database_unavailable,"
            f" {log.store_reports} shared_store_unavailable, {log.errors} at error level,"
            f" {log.tracebacks} tracebacks, {log.not_json} not JSON",
            f"- writes: {len(self.acknowledged)} acknowledged, {len(lost)} of them missing;"
            f" {len(self.found - self.acknowledged)} stored without a 201 (their answer was a"
            " failure)",
        ]
        if lost:
            lines.append(f"- missing: {', '.join(lost[:10])}")
        return "\n".join(lines)


def _register(base_url: str) -> str:
    user = {"username": "writer", "email": "writer@example.com", "password": "password123"}
    response = httpx.post(f"{base_url}/api/users", json={"user": user}, trust_env=False, timeout=30)
    response.raise_for_status()
    token: str = response.json()["user"]["token"]
    return token


def _first_article(base_url: str, token: str) -> str:
    article = {"title": "first", "description": "d", "body": "b", "tagList": ["fault"]}
    response = httpx.post(
        f"{base_url}/api/articles",
        json={"article": article},
        headers={"Authorization": f"Token {token}"},
        trust_env=False,
        timeout=30,
    )
    response.raise_for_status()
    slug: str = response.json()["article"]["slug"]
    return slug


def _titles(base_url: str) -> set[str]:
    titles: set[str] = set()
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as client:
        for offset in itertools.count(0, PAGE_SIZE):
            response = client.get(
                "/api/articles", params={"author": "writer", "limit": PAGE_SIZE, "offset": offset}
            )
            response.raise_for_status()
            page = [article["title"] for article in response.json()["articles"]]
            titles.update(page)
            if len(page) < PAGE_SIZE:
                return titles
    return titles


Fault = contextlib.AbstractAsyncContextManager[None]


async def _drive(load: Load, shape: Shape, fault: Fault) -> Window:
    window = Window()
    async with load.running():
        await asyncio.sleep(shape.before_seconds)
        window.started = time.monotonic()
        async with fault:
            await asyncio.sleep(shape.fault_seconds)
        window.ended = time.monotonic()
        await asyncio.sleep(shape.after_seconds)
    return window


def run(
    scenario: Scenario,
    shape: Shape,
    fault: Fault,
    *,
    url: str,
    workers: int,
    logs: Path,
    redis_url: str | None = None,
) -> Result:
    """Migrate the database at `url`, serve Conduit on it (its log in `logs`), load it through
    `fault`, and count."""
    database.migrate(url, quiet=True)
    port = processes.free_port()
    env = {
        **servers.store_env(redis_url, f"{servers.KEY_PREFIX}-faults"),
        "PYTHONUNBUFFERED": "1",
        **shape.env,
    }
    target = servers.Target(str(scenario), port, servers.serve_command(port, workers), env)
    with servers.running([target], database.server_env(url), logs):
        token = _register(target.base_url)
        slug = _first_article(target.base_url, token)
        load = Load(target.base_url, token, slug, shape.readers, shape.writers)
        window = asyncio.run(_drive(load, shape, fault))
        found = _titles(target.base_url)
    acknowledged = {o.title for o in load.outcomes if o.title and o.status == httpx.codes.CREATED}
    return Result(
        scenario=scenario,
        shape=shape,
        workers=workers,
        outcomes=load.outcomes,
        window=window,
        log=_log_counts(logs / f"{target.name}.log"),
        acknowledged=acknowledged,
        found=found - {"first"},
    )


# The faults ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stopped(cluster: Cluster, mode: StopMode) -> AsyncIterator[None]:
    await asyncio.to_thread(cluster.stop, mode)
    try:
        yield
    finally:
        await asyncio.to_thread(cluster.start)


@contextlib.asynccontextmanager
async def _redis_stopped(server: PrivateRedis) -> AsyncIterator[None]:
    await asyncio.to_thread(server.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(server.start)


@contextlib.asynccontextmanager
async def _articles_locked(url: str) -> AsyncIterator[None]:
    """Every statement on the articles table, SELECTs included, waits for this transaction."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


def _db_restart(cluster: Cluster, workers: int, outage: float, mode: StopMode) -> Result:
    shape = Shape(
        f"PostgreSQL stopped (-m {mode}), down {outage:g} s, started",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=outage,
        after_seconds=8,
        # Every read reaches the database: from the cache some would not see the outage.
        env={"CONDUIT_CACHE_ENABLED": "false"},
    )
    url = cluster.create_database("restart")
    fault = stopped(cluster, mode)
    return run(Scenario.DB_RESTART, shape, fault, url=url, workers=workers, logs=SCRATCH)


def _redis_restart(cluster: Cluster, workers: int, outage: float) -> Result:
    shape = Shape(
        f"Redis (rate limits and read cache) stopped, down {outage:g} s, started",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=outage,
        after_seconds=8,
    )
    url = cluster.create_database("redis")
    with private_redis() as server:
        return run(
            Scenario.REDIS_RESTART,
            shape,
            _redis_stopped(server),
            url=url,
            workers=workers,
            logs=SCRATCH,
            redis_url=server.url,
        )


def _slow_db(cluster: Cluster, workers: int) -> Result:
    shape = Shape(
        "the articles table locked (ACCESS EXCLUSIVE) by another connection",
        readers=8,
        writers=1,
        before_seconds=4,
        fault_seconds=10,
        after_seconds=6,
        env={"CONDUIT_CACHE_ENABLED": "false"},
    )
    url = cluster.create_database("slow")
    fault = _articles_locked(url)
    return run(Scenario.SLOW_DB, shape, fault, url=url, workers=workers, logs=SCRATCH)


# Pools a few clients outnumber, and a pool timeout shorter than the statement timeout: waiting
# for a connection, not the statement, is what times out.
SMALL_POOLS = {
    "CONDUIT_DB_POOL_SIZE": "2",
    "CONDUIT_DB_MAX_OVERFLOW": "0",
    "CONDUIT_DB_READ_POOL_SIZE": "4",
    "CONDUIT_DB_POOL_TIMEOUT_SECONDS": "2",
}


def _pool_exhausted(cluster: Cluster, workers: int) -> Result:
    shape = Shape(
        "pools of 4 read and 2 write connections, the articles table locked",
        readers=16,
        writers=4,
        before_seconds=4,
        fault_seconds=10,
        after_seconds=6,
        env={"CONDUIT_CACHE_ENABLED": "false", **SMALL_POOLS},
    )
    url = cluster.create_database("pools")
    fault = _articles_locked(url)
    return run(Scenario.POOL_EXHAUSTED, shape, fault, url=url, workers=workers, logs=SCRATCH)


@app.command()
def main(
    scenarios: Annotated[
        list[Scenario] | None,
        typer.Option("--scenario", help="Run this one (repeatable); all of them by default."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="conduit serve --workers.")] = 1,
    outage: Annotated[
        float, typer.Option(min=0.5, max=20, help="Seconds PostgreSQL or Redis is down.")
    ] = 2.0,
    stop_mode: Annotated[
        StopMode, typer.Option(help="How db-restart stops PostgreSQL: immediate is a crash.")
    ] = StopMode.FAST,
) -> None:
    """Inject faults into a loaded Conduit on loopback and report what its clients saw."""
    chosen = scenarios or list(Scenario)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with private_cluster() as cluster:
        for scenario in chosen:
            if scenario is Scenario.DB_RESTART:
                result = _db_restart(cluster, workers, outage, stop_mode)
            elif scenario is Scenario.REDIS_RESTART:
                result = _redis_restart(cluster, workers, outage)
            elif scenario is Scenario.SLOW_DB:
                result = _slow_db(cluster, workers)
            else:
                result = _pool_exhausted(cluster, workers)
            print(result.report(), "\n", flush=True)


if __name__ == "__main__":
    app()
