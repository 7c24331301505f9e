"""What background jobs cost a request, and how many a second `conduit worker` runs.

Enqueue cost: units of work that each make one small write (a user's bio), alone and then with
one job enqueued in the same transaction (a `notifications.user_followed`, as a follow
enqueues), one after another on one connection; the difference is what enqueueing adds to a
request. On PostgreSQL that is PgQueuer's insert, on SQLite the `jobs` outbox row.

Throughput (PostgreSQL): with 1, then 2, `conduit worker` processes running and idle, one
transaction enqueues N jobs; the time from its commit until the queue is empty gives jobs/s.
Each job is real work: it inserts its notification in a transaction of its own, each for a user
of its own (a follow notifies once a day per pair, so N follows of one user would write one).

    .tools/bin/uv run python -m benchmarks.jobs [--jobs 5000] [--requests 2000]

It uses a database of its own (`conduit_bench_jobs`, dropped and recreated) on the server of
BENCH_DATABASE_URL, else the local one. See docs/benchmarks.md ("Jobs").
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from benchmarks.setup import database, processes
from conduit import clients, migrations
from conduit.auth.models import User
from conduit.config import DatabaseSettings, JobsSettings, Settings
from conduit.database import create_engine, create_sessions, transaction, utcnow
from conduit.jobs import enqueue
from conduit.notifications.tasks import Followed, user_followed

app = typer.Typer(add_completion=False)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "conduit_bench_jobs"
WORKER_READY_SECONDS = 60.0


def _settings(url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=url), jobs=JobsSettings(run_in_api=False))


def _recreate(server_url: str) -> str:
    url = make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    database.recreate(url)
    return url


async def _prepare(url: str, followees: int = 1) -> None:
    """Migrate, and add the follower (id 1) and the users it follows (ids 2 on)."""
    engine = create_engine(DatabaseSettings(url=url))
    names = ["follower", *(f"followee{n}" for n in range(followees))]
    try:
        await migrations.upgrade(engine)
        async with transaction(create_sessions(engine)) as session:
            session.add_all(
                [
                    User(username=name, email=f"{name}@example.com", password_hash="!")  # noqa: S106 (no sign-in)
                    for name in names
                ]
            )
    finally:
        await engine.dispose()


@asynccontextmanager
async def _connected(url: str) -> AsyncIterator[clients.Clients]:
    async with clients.connect(_settings(url), run_embedded_jobs=False) as connected:
        yield connected


async def _units_of_work(connected: clients.Clients, count: int, *, with_job: bool) -> float:
    """Mean seconds per unit of work."""
    durations = []
    for n in range(count):
        started = time.perf_counter()
        async with connected.jobs.context.unit_of_work() as session:
            await session.execute(update(User).where(User.id == 1).values(bio=f"bio {n}"))
            if with_job:
                await enqueue(
                    session, user_followed, Followed(at=utcnow(), follower_id=1, followee_id=2)
                )
        durations.append(time.perf_counter() - started)
    return statistics.mean(durations[count // 10 :])


async def _enqueue_cost(url: str, requests: int) -> tuple[float, float]:
    await _prepare(url)
    async with _connected(url) as connected:
        await _units_of_work(connected, requests // 10, with_job=True)
        without = await _units_of_work(connected, requests, with_job=False)
        with_job = await _units_of_work(connected, requests, with_job=True)
    return without, with_job


@contextmanager
def _workers(url: str, count: int, logs: Path) -> Iterator[None]:
    with ExitStack() as stack:
        for n in range(count):
            log = logs / f"worker-{count}-{n}.log"
            process = stack.enter_context(
                processes.started(
                    [sys.executable, "-m", "conduit", "worker"],
                    env=database.server_env(url),
                    output=log,
                )
            )
            deadline = time.monotonic() + WORKER_READY_SECONDS
            while "jobs," not in log.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker did not start: {log.read_text()}")
                time.sleep(0.05)
        yield


async def _throughput(url: str, jobs: int) -> float:
    async with _connected(url) as connected:
        async with connected.jobs.context.unit_of_work() as session:
            for n in range(jobs):
                await enqueue(
                    session,
                    user_followed,
                    Followed(at=utcnow(), follower_id=1, followee_id=2 + n),
                )
        committed = time.perf_counter()
        async with connected.database.engine.connect() as connection:
            while (await connection.scalar(text("SELECT count(*) FROM pgqueuer"))) != 0:
                await connection.rollback()
                await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - committed
        async with connected.database.engine.connect() as connection:
            done = await connection.scalar(text("SELECT count(*) FROM notifications"))
        if done != jobs:
            raise RuntimeError(f"{done} notifications for {jobs} jobs")
    return jobs / elapsed


@app.command()
def main(
    jobs: Annotated[int, typer.Option(min=100, help="Jobs per throughput run.")] = 5000,
    requests: Annotated[int, typer.Option(min=100, help="Units of work per cost run.")] = 2000,
) -> None:
    server_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER)
    with tempfile.TemporaryDirectory() as scratch:
        sqlite_url = f"sqlite+aiosqlite:///{scratch}/jobs.db"
        for name, url in (
            ("PostgreSQL (pgqueuer)", _recreate(server_url)),
            ("SQLite (embedded)", sqlite_url),
        ):
            without, with_job = asyncio.run(_enqueue_cost(url, requests))
            print(
                f"{name}: unit of work {without * 1e6:.0f} µs alone, "
                f"{with_job * 1e6:.0f} µs with one job enqueued: "
                f"+{(with_job - without) * 1e6:.0f} µs per enqueue"
            )
        logs = Path(scratch)
        for count in (1, 2):
            url = _recreate(server_url)
            asyncio.run(_prepare(url, followees=jobs))
            with _workers(url, count, logs):
                rate = asyncio.run(_throughput(url, jobs))
            print(f"PostgreSQL, {count} worker(s): {rate:.0f} jobs/s ({jobs} jobs)")


if __name__ == "__main__":
    app()
