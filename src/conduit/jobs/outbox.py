"""Conduit's own `jobs` table: the queue of the embedded default, and the outbox of QStash.

A job is a row written in its unit of work's transaction. On the embedded default (SQLite, one
machine) an `EmbeddedWorker` in the API process (or in `conduit worker`) claims due rows and
runs them; with QStash, rows are published after commit and the delivery runs them
(`conduit.jobs.qstash`). Either way a row outlives the process that wrote it, so a restart loses
nothing.

A claim is a lease: a running row's `run_after` is when its lease ends, after which any worker
may claim it again (its worker died). Jobs are given `timeout_seconds` to run, the lease a
little more.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String, Text, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from conduit.database import Base, UTCDateTime, after_commit, state_of, utcnow
from conduit.jobs.core import Arguments, Job, JobContext, Task, retry_delay, run, task

logger = logging.getLogger(__name__)

# Beyond its timeout, how long a claimed job stays its worker's.
LEASE_MARGIN_SECONDS = 10
# How often a worker looks for due jobs that no wake-up announced (enqueued by another
# process, or left by one that died).
POLL_SECONDS = 30.0
CLAIM_BATCH = 10


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    # Handed to QStash, which now owns its delivery and retries.
    PUBLISHED = "published"
    # Out of attempts: held until `conduit jobs retry` or `discard` (the dead letter).
    FAILED = "failed"


class JobRecord(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index(None, "status", "run_after"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[Status] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    # Queued: when it is due. Running: when its lease ends.
    run_after: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    # When it was first due (`run_after` moves with leases and retries).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def job(self) -> Job:
        return Job(
            id=self.id,
            task=self.task,
            arguments=self.arguments,
            request_id=self.request_id,
            due_at=self.due_at,
        )


class QStashDelivery(Base):
    """A QStash message whose job ran to success: delivered again (a replay), it is answered
    without running the job a second time (`conduit.jobs.qstash`)."""

    __tablename__ = "qstash_deliveries"

    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# How long a delivery is remembered: far longer than its signature is valid (minutes), and than
# QStash retries a message.
DELIVERIES_KEPT = timedelta(days=7)


# Here rather than beside the deliveries' route: every process lists every task, and only those
# that use QStash import its SDK.
@task("jobs.qstash_purge", Arguments)
async def purge_qstash_deliveries(context: JobContext, _: Job, __: Arguments) -> None:
    """Forget the deliveries older than `DELIVERIES_KEPT`: their signatures expired long ago."""
    async with context.unit_of_work() as session:
        await session.execute(
            delete(QStashDelivery).where(QStashDelivery.delivered_at < utcnow() - DELIVERIES_KEPT)
        )


class Outbox:
    """Puts jobs in the `jobs` table; once their transaction commits, `on_commit` is given
    their rows (to wake a worker, or publish them)."""

    def __init__(self, on_commit: Callable[[Sequence[JobRecord]], Awaitable[None]]) -> None:
        self._on_commit = on_commit

    async def put(self, session: AsyncSession, job: Job, *, delay: timedelta | None) -> None:
        due = utcnow() + (delay or timedelta())
        record = JobRecord(
            id=job.id,
            task=job.task,
            arguments=dict(job.arguments),
            status=Status.QUEUED,
            attempts=0,
            run_after=due,
            request_id=job.request_id,
            due_at=due,
        )
        session.add(record)
        state = state_of(session)
        committed = state.outbox
        if committed is None:
            committed = state.outbox = []
            on_commit = self._on_commit

            async def hand_over() -> None:
                await on_commit(committed)

            after_commit(session, hand_over)
        committed.append(record)


class EmbeddedWorker:
    """Runs the `jobs` table's due jobs, at most `CLAIM_BATCH` at once, and enqueues the
    periodic tasks when their schedule says."""

    def __init__(self, tasks: Mapping[str, Task[Any]], schedules: Mapping[str, str]) -> None:
        self._tasks = tasks
        self._schedules = schedules
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_fire = {name: _next(cron) for name, cron in schedules.items()}

    async def woken(self, _: Sequence[JobRecord]) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Return from `run_forever` once the jobs running now have finished."""
        self._stopping = True
        self._wake.set()

    async def run_forever(self, context: JobContext) -> None:
        while not self._stopping:
            try:
                await self._fire_schedules(context)
                while not self._stopping and await self.run_due(context):
                    pass
                wait = await self._seconds_to_next(context)
            except SQLAlchemyError as error:
                logger.warning("jobs_poll_failed: %s", error, extra={"error": str(error)})
                wait = 1.0
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_due(self, context: JobContext) -> int:
        """Claim and run the jobs due now; how many there were."""
        settings = context.settings.jobs
        now = utcnow()
        lease_end = now + timedelta(seconds=settings.timeout_seconds + LEASE_MARGIN_SECONDS)
        due = (
            select(JobRecord.id)
            .where(
                JobRecord.status.in_([Status.QUEUED, Status.RUNNING]), JobRecord.run_after <= now
            )
            .order_by(JobRecord.run_after)
            .limit(CLAIM_BATCH)
        )
        async with context.unit_of_work() as session:
            claimed = list(
                await session.scalars(
                    update(JobRecord)
                    .where(JobRecord.id.in_(due))
                    .values(
                        status=Status.RUNNING,
                        attempts=JobRecord.attempts + 1,
                        run_after=lease_end,
                    )
                    .returning(JobRecord),
                    execution_options={"synchronize_session": False},
                )
            )
        await asyncio.gather(*(self._run(context, record) for record in claimed))
        return len(claimed)

    async def _run(self, context: JobContext, record: JobRecord) -> None:
        settings = context.settings.jobs
        claim = (JobRecord.id == record.id) & (JobRecord.attempts == record.attempts)
        try:
            await run(context, self._tasks, record.job(), attempt=record.attempts)
        except Exception as error:  # noqa: BLE001 (logged by `run`; recorded here, not raised)
            outcome = (
                {"status": Status.FAILED}
                if record.attempts >= settings.max_attempts
                else {
                    "status": Status.QUEUED,
                    "run_after": utcnow() + retry_delay(settings, record.attempts),
                }
            )
            async with context.unit_of_work() as session:
                await session.execute(
                    update(JobRecord)
                    .where(claim)
                    .values(last_error=f"{type(error).__name__}: {error}", **outcome)
                )
            return
        async with context.unit_of_work() as session:
            await session.execute(delete(JobRecord).where(claim))

    async def _fire_schedules(self, context: JobContext) -> None:
        now = utcnow()
        for name, fire_at in self._next_fire.items():
            if fire_at <= now:
                async with context.unit_of_work() as session:
                    await context.queue.put(
                        session, Job(id=uuid.uuid4(), task=name, arguments={}), delay=None
                    )
                self._next_fire[name] = _next(self._schedules[name])

    async def _seconds_to_next(self, context: JobContext) -> float:
        async with context.database.sessions() as session:
            earliest = await session.scalar(
                select(func.min(JobRecord.run_after)).where(
                    JobRecord.status.in_([Status.QUEUED, Status.RUNNING])
                )
            )
        candidates = [*self._next_fire.values(), utcnow() + timedelta(seconds=POLL_SECONDS)]
        if earliest is not None:
            candidates.append(earliest)
        return max(0.0, (min(candidates) - utcnow()).total_seconds())


def _next(cron: str) -> datetime:
    from croniter import croniter  # noqa: PLC0415 (50 ms of every start, for schedules only)

    next_time: datetime = croniter(cron, utcnow()).get_next(datetime)
    return next_time
