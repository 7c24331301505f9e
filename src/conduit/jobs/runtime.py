"""The process's jobs backend, created and closed with the app or the worker (`connect`)."""

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from conduit.cache import Cache
from conduit.config import Environment, JobsBackend, Settings
from conduit.database import Database
from conduit.jobs.core import JobContext, Queue, Task
from conduit.jobs.outbox import EmbeddedWorker, Outbox
from conduit.jobs.postgres_queue import PgQueuerQueue
from conduit.mail import Mailer


@dataclass(frozen=True, slots=True)
class Jobs:
    backend: JobsBackend
    context: JobContext
    tasks: Mapping[str, Task[Any]]
    schedules: Mapping[str, str]
    # The embedded backend's: runs the `jobs` table in this process or `conduit worker`.
    embedded: EmbeddedWorker | None = None

    @property
    def queue(self) -> Queue:
        return self.context.queue


async def _stopped(worker: EmbeddedWorker, running: "asyncio.Task[None]") -> None:
    """Let the jobs running finish (each is bounded by its timeout)."""
    worker.stop()
    await running


@asynccontextmanager
async def connect(
    settings: Settings,
    database: Database,
    cache: Cache,
    *,
    tasks: Mapping[str, Task[Any]],
    schedules: Mapping[str, str],
    run_embedded: bool,
) -> AsyncIterator[Jobs]:
    """The backend the settings name. With `run_embedded`, the embedded backend's worker runs
    in this process until it closes; with QStash, pending rows are relayed and the periodic
    tasks scheduled. A backend's client library is imported only when it is the one in use
    (PgQueuer and the QStash SDK cost a process a third to two thirds of a second each), and
    PgQueuer only with the first job put (`conduit.jobs.postgres_queue`)."""
    mailer = Mailer(settings.smtp, log_contents=settings.env is Environment.DEVELOPMENT)

    def context(queue: Queue) -> JobContext:
        return JobContext(
            settings=settings, database=database, queue=queue, cache=cache, mailer=mailer
        )

    backend = settings.jobs_backend
    async with AsyncExitStack() as stack:
        if backend is JobsBackend.PGQUEUER:
            yield Jobs(backend, context(PgQueuerQueue()), tasks, schedules)
        elif backend is JobsBackend.QSTASH:
            from conduit.jobs import qstash  # noqa: PLC0415

            client = await stack.enter_async_context(qstash.client(settings))
            publisher = qstash.Publisher(client, settings, database)
            await publisher.schedule(schedules)
            relay = asyncio.create_task(publisher.relay_forever())
            stack.callback(relay.cancel)
            yield Jobs(backend, context(Outbox(publisher.publish)), tasks, schedules)
        else:
            worker = EmbeddedWorker(tasks, schedules)
            jobs = Jobs(backend, context(Outbox(worker.woken)), tasks, schedules, embedded=worker)
            if run_embedded:
                running = asyncio.create_task(worker.run_forever(jobs.context))
                stack.push_async_callback(_stopped, worker, running)
            yield jobs
