"""Tasks, jobs, and how a unit of work enqueues them.

A `Task` is a named handler with a Pydantic model of its arguments. `enqueue` records a job (a
task, its arguments and a fresh id) in the unit of work's transaction, through the process's
`Queue`: the job exists if and only if the transaction commits. Whatever backend then runs it
calls `run`, which gives the handler a unit of work of its own (`JobContext`).
"""

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit import metrics
from conduit.cache import Cache
from conduit.config import JobsSettings, Settings
from conduit.database import Database, NotGiven, state_of, transaction, utcnow
from conduit.mail import Mailer

logger = logging.getLogger(__name__)

A = TypeVar("A", bound=BaseModel)


class Arguments(BaseModel):
    """What a task is given: ids and values, never ORM objects."""

    # Refused arguments are logged with the job's failure: without the values, email
    # addresses among them.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


@dataclass(frozen=True, slots=True)
class Job:
    """One run of a task, as every backend stores and transmits it."""

    id: uuid.UUID
    task: str
    arguments: Mapping[str, Any]
    # The `X-Request-ID` of the request that enqueued it, bound to the job's log lines.
    request_id: str | None = None
    # When it was due to run first (None: periodic runs).
    due_at: datetime | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "id": str(self.id),
                "task": self.task,
                "arguments": self.arguments,
                "request_id": self.request_id,
                "due_at": self.due_at,
            }
        )

    @classmethod
    def decode(cls, data: bytes | str) -> "Job":
        message = _Message.model_validate_json(data)
        return cls(
            id=message.id,
            task=message.task,
            arguments=message.arguments,
            request_id=message.request_id,
            due_at=message.due_at,
        )


class _Message(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    id: uuid.UUID
    task: str
    arguments: dict[str, Any]
    # Absent from the jobs of releases before them.
    request_id: str | None = None
    due_at: datetime | None = None


class Queue(Protocol):
    """Where the process's units of work put jobs: inside their transaction."""

    async def put(self, session: AsyncSession, job: Job, *, delay: timedelta | None) -> None: ...


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running job may use: the process's clients, and units of work of its own."""

    settings: Settings
    database: Database
    queue: Queue
    cache: Cache
    mailer: Mailer

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        async with transaction(
            self.database.sessions, cache=self.cache, queue=self.queue
        ) as session:
            yield session


Handler = Callable[[JobContext, Job, A], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Task(Generic[A]):
    name: str
    arguments: type[A]
    handler: Handler[A]

    async def run(self, context: JobContext, job: Job) -> None:
        await self.handler(context, job, self.arguments.model_validate(job.arguments))


def task(name: str, arguments: type[A]) -> Callable[[Handler[A]], Task[A]]:
    """Declare a task: `@task("notifications.followed", Followed)` over its handler."""

    def declare(handler: Handler[A]) -> Task[A]:
        return Task(name, arguments, handler)

    return declare


async def enqueue(
    session: AsyncSession, task: Task[A], arguments: A, *, delay: timedelta | None = None
) -> uuid.UUID:
    """Record a run of `task` in the session's transaction; it runs once that commits, after
    `delay` if given, and never if it rolls back. Returns the job's id."""
    job = Job(
        id=uuid.uuid4(),
        task=task.name,
        arguments=arguments.model_dump(mode="json"),
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        due_at=utcnow() + (delay or timedelta()),
    )
    queue = state_of(session).queue
    if queue is None:
        raise NotGiven("queue")
    await queue.put(session, job, delay=delay)
    return job.id


class UnknownTask(Exception):
    """A job names a task this process does not have (a newer release enqueued it)."""


class InvalidJob(Exception):
    """A job's message is not a job, or its arguments are not its task's."""


async def run(
    context: JobContext, tasks: Mapping[str, Task[Any]], job: Job, *, attempt: int
) -> None:
    """Run `job` (its `attempt`-th run) within the configured time. A failure is logged, with
    whether it was the last attempt, and raised for the backend to retry or hold the job."""
    started = time.perf_counter()
    if attempt == 1 and job.due_at is not None:
        waited = (utcnow() - job.due_at).total_seconds()
        metrics.JOB_QUEUE_LATENCY.labels(job.task).observe(max(0.0, waited))
    with structlog.contextvars.bound_contextvars(
        request_id=job.request_id, job_id=str(job.id), task=job.task, attempt=attempt
    ):
        try:
            async with asyncio.timeout(context.settings.jobs.timeout_seconds):
                await _run(tasks, context, job)
        except Exception:
            last = attempt >= context.settings.jobs.max_attempts
            metrics.JOB_RUNS.labels(job.task, "failed").inc()
            logger.warning(
                "job_failed: %s %s, attempt %d%s",
                job.task,
                job.id,
                attempt,
                " (the last)" if last else "",
                exc_info=True,
                extra={"last_attempt": last},
            )
            raise
        finally:
            metrics.JOB_DURATION.labels(job.task).observe(time.perf_counter() - started)
        metrics.JOB_RUNS.labels(job.task, "done").inc()
        logger.info("job_done: %s %s", job.task, job.id)


async def _run(tasks: Mapping[str, Task[Any]], context: JobContext, job: Job) -> None:
    task = tasks.get(job.task)
    if task is None:
        raise UnknownTask(job.task)
    try:
        await task.run(context, job)
    except ValidationError as error:
        raise InvalidJob(f"{job.task}: {error}") from error


def retry_delay(settings: JobsSettings, attempt: int) -> timedelta:
    """How long the `attempt`-th failure (1 for the first) waits before the next run:
    exponential, capped, with "equal jitter", so that jobs that failed together (an outage)
    do not all come back at once, and each wait is at least half the previous cap."""
    cap = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return timedelta(seconds=cap / 2 + random.uniform(0, cap / 2))  # noqa: S311 (jitter, not a secret)
