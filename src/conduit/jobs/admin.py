"""What `conduit jobs` shows and does, on the backend the settings name: the jobs waiting,
running and held as failed (the dead letter), and retrying or discarding them by id.

With QStash, the `jobs` table shows what was not yet handed over or failed for good; what QStash
holds is in its console (and its own dead-letter queue).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from conduit.config import JobsBackend, Settings
from conduit.database import Database, transaction, utcnow
from conduit.jobs.outbox import JobRecord, Status

if TYPE_CHECKING:
    from pgqueuer.domain.types import JOB_STATUS


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    task: str
    status: Status
    # Runs started, the one under way included.
    attempts: int
    # Queued: when it is due; running: its lease's or heartbeat's time.
    at: datetime
    error: str | None


# PgQueuer's names for the states it has (it publishes nothing).
PGQUEUER_STATUS: "dict[Status, JOB_STATUS]" = {
    Status.QUEUED: "queued",
    Status.RUNNING: "picked",
    Status.FAILED: "failed",
}


class UnknownJobId(Exception):
    """An id that is not one of this backend's."""


async def listing(
    settings: Settings, database: Database, *, status: Status | None, limit: int
) -> list[Listed]:
    if settings.jobs_backend is JobsBackend.PGQUEUER:
        if status is Status.PUBLISHED:
            return []
        from conduit.jobs import postgres  # noqa: PLC0415 (PgQueuer only where it is used)

        ours = {theirs: mine for mine, theirs in PGQUEUER_STATUS.items()}
        async with postgres.admin(settings.database) as queries:
            statuses = None if status is None else [PGQUEUER_STATUS[status]]
            jobs = await queries.browse_queue(limit=limit, statuses=statuses)
        return [
            Listed(
                id=str(job.id),
                task=job.entrypoint,
                status=ours[job.status],
                # PgQueuer counts retries: a job picked or held has run once more.
                attempts=job.attempts if job.status == "queued" else job.attempts + 1,
                at=job.execute_after if job.status == "queued" else job.heartbeat,
                error=None,
            )
            for job in jobs
        ]
    query = select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit)
    if status is not None:
        query = query.where(JobRecord.status == status)
    async with database.sessions() as session:
        records = await session.scalars(query)
        return [
            Listed(
                id=str(record.id),
                task=record.task,
                status=record.status,
                attempts=record.attempts,
                at=record.run_after,
                error=record.last_error,
            )
            for record in records
        ]


async def retry(settings: Settings, database: Database, ids: list[str]) -> int:
    """Queue failed jobs again, with their attempts back to zero; how many there were."""
    if settings.jobs_backend is JobsBackend.PGQUEUER:
        from conduit.jobs import postgres  # noqa: PLC0415

        async with postgres.admin(settings.database) as queries:
            return await postgres.requeue(queries, _numbers(ids))
    async with transaction(database.sessions) as session:
        retried = await session.scalars(
            update(JobRecord)
            .where(JobRecord.id.in_(_uuids(ids)), JobRecord.status == Status.FAILED)
            .values(status=Status.QUEUED, attempts=0, run_after=utcnow(), last_error=None)
            .returning(JobRecord.id)
        )
        return len(retried.all())


async def discard(settings: Settings, database: Database, ids: list[str]) -> int:
    """Delete queued or failed jobs (a running one is left to finish); how many there were."""
    if settings.jobs_backend is JobsBackend.PGQUEUER:
        from conduit.jobs import postgres  # noqa: PLC0415

        async with postgres.admin(settings.database) as queries:
            return await postgres.discard(queries, _numbers(ids))
    async with transaction(database.sessions) as session:
        discarded = await session.scalars(
            delete(JobRecord)
            .where(
                JobRecord.id.in_(_uuids(ids)),
                JobRecord.status.in_([Status.QUEUED, Status.PUBLISHED, Status.FAILED]),
            )
            .returning(JobRecord.id)
        )
        return len(discarded.all())


def _uuids(ids: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in ids]
    except ValueError as error:
        raise UnknownJobId("job ids of the embedded and QStash backends are UUIDs") from error


def _numbers(ids: list[str]) -> list[int]:
    try:
        return [int(value) for value in ids]
    except ValueError as error:
        raise UnknownJobId("job ids of the pgqueuer backend are numbers") from error
