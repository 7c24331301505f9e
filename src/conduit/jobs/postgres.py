"""Jobs on PostgreSQL, by PgQueuer (docs/decisions.md, "Jobs").

A job is a row of PgQueuer's `pgqueuer` table, inserted by the request's own transaction
(`conduit.jobs.postgres_queue`). The insert's trigger notifies the workers at commit.

`conduit worker` processes run them: each claims jobs with `FOR UPDATE SKIP LOCKED`, signals a
heartbeat while it runs them, and takes over the jobs of a worker whose heartbeat stopped
(killed, cut off). A failed run is retried with backoff (`retry_delay`); after
`max_attempts` the job is held with status `failed`, the dead letter, until `conduit jobs`
retries or discards it.
"""

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.adapters.persistence.queries import Queries
from pgqueuer.core.executors import AbstractEntrypointExecutor, EntrypointExecutor
from pgqueuer.core.executors import EntrypointExecutorParameters as Parameters
from pgqueuer.domain import errors, models
from pgqueuer.domain.types import JobId, QueueExecutionMode

from conduit.config import DatabaseSettings, JobsSettings
from conduit.jobs.core import Job, JobContext, Task, retry_delay, run


class _Logged(Exception):
    """A run that failed, which `run` has logged with its traceback: raised from its error, so
    that PgQueuer keeps the traceback with the job and does not log it again."""


def _not_logged_already(record: logging.LogRecord) -> bool:
    """False for PgQueuer's own line about a job it holds as failed (at ERROR, traceback and
    all) once the run's own line has said it; every other line of PgQueuer's passes."""
    failure = record.exc_info[1] if record.exc_info else None
    return not (record.levelno == logging.ERROR and isinstance(failure, _Logged))


@dataclasses.dataclass
class _Retrying(EntrypointExecutor):
    """Turns a failed run into a retry after `retry_delay`, or, on the last attempt, a
    failure that PgQueuer holds (`on_failure="hold"`)."""

    settings: JobsSettings

    async def execute(self, job: models.Job, context: models.Context) -> None:
        try:
            await super().execute(job, context)
        except Exception as error:
            attempt = job.attempts + 1
            if attempt >= self.settings.max_attempts:
                raise
            delay = retry_delay(self.settings, attempt)
            raise errors.RetryRequested(delay=delay, reason=str(error)) from error


def _retrying(settings: JobsSettings, parameters: Parameters) -> AbstractEntrypointExecutor:
    return _Retrying(parameters, settings)


async def work(
    context: JobContext,
    tasks: Mapping[str, Task[Any]],
    schedules: Mapping[str, str],
    *,
    stop: asyncio.Event,
    drain: bool = False,
) -> None:
    """Run jobs until `stop` is set (then finish those running), or, with `drain`, until none
    is left."""
    settings = context.settings.jobs
    logging.getLogger("pgqueuer").addFilter(_not_logged_already)
    # LISTEN needs a session of its own: past the pooler, where there is one.
    connection = await asyncpg.connect(context.settings.database.direct_asyncpg_dsn)
    try:
        pgq = PgQueuer.from_asyncpg_connection(connection)
        stopping = asyncio.create_task(stop.wait())
        stopping.add_done_callback(lambda _: pgq.shutdown.set())

        async def execute(job: models.Job) -> None:
            decoded = Job.decode(job.payload or b"")
            try:
                await run(context, tasks, decoded, attempt=job.attempts + 1)
            except Exception as error:
                raise _Logged(f"{type(error).__name__}: {error}") from error

        for name in tasks:
            pgq.entrypoint(name, on_failure="hold", executor_factory=partial(_retrying, settings))(
                execute
            )

        for name, cron in schedules.items():

            async def enqueue(_: models.Schedule, name: str = name) -> None:
                job = Job(id=uuid.uuid4(), task=name, arguments={})
                await pgq.qm.queries.enqueue(name, job.encode(), dedupe_key=str(job.id))

            pgq.schedule(name, cron)(enqueue)

        batch_size = max(1, settings.concurrency // 2)
        heartbeat_timeout = timedelta(seconds=settings.heartbeat_timeout_seconds)
        await pgq.run(
            batch_size=batch_size,
            max_concurrent_tasks=max(settings.concurrency, 2 * batch_size),
            heartbeat_timeout=heartbeat_timeout,
            # New jobs wake a worker at once (LISTEN); a dead worker's, and a retry, are noticed
            # by looking. PgQueuer decides how long to wait before a failed run's retry is
            # queued, and a retry wakes no one: looking every retry base keeps a retry's wait
            # what `retry_delay` says, give or take one base, rather than the heartbeat's 30 s.
            dequeue_timeout=min(heartbeat_timeout, timedelta(seconds=settings.retry_base_seconds)),
            mode=QueueExecutionMode.drain if drain else QueueExecutionMode.continuous,
        )
        stopping.cancel()
    finally:
        await connection.close()


@asynccontextmanager
async def admin(settings: DatabaseSettings) -> AsyncIterator[Queries]:
    """PgQueuer's queries on a connection of their own, for `conduit jobs`."""
    connection = await asyncpg.connect(settings.direct_asyncpg_dsn)
    try:
        yield Queries.from_asyncpg_connection(connection)
    finally:
        await connection.close()


async def requeue(queries: Queries, ids: list[int]) -> int:
    failed = [job.id for job in await _jobs(queries, ids) if job.status == "failed"]
    await queries.requeue_jobs(failed)
    return len(failed)


async def discard(queries: Queries, ids: list[int]) -> int:
    waiting = [job.id for job in await _jobs(queries, ids) if job.status in ("queued", "failed")]
    await queries.mark_job_as_cancelled(waiting)
    return len(waiting)


async def _jobs(queries: Queries, ids: list[int]) -> list[models.Job]:
    found = [await queries.queue_job_by_id(JobId(job_id)) for job_id in ids]
    return [job for job in found if job is not None]
