"""How far behind the job queue is: its jobs by status, and how long the oldest queued job that
is due has waited (docs/jobs.md, "Watching and handling the queue").

Both are read from the database, in one statement: at each scrape of `/metrics` (the
`conduit_jobs` and `conduit_jobs_oldest_queued_age_seconds` gauges), and by each API process
once per `CONDUIT_JOBS_WAIT_CHECK_SECONDS` (`watching`), which warns when the wait has passed
`CONDUIT_JOBS_WAIT_WARNING_SECONDS`: jobs piling up, the usual sign that no `conduit worker` runs.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import exc, func, select, text

from conduit.config import JobsBackend, Settings
from conduit.database import UNAVAILABLE, Database, report_unavailable, unavailable, utcnow
from conduit.jobs.admin import PGQUEUER_STATUS
from conduit.jobs.outbox import JobRecord, Status

logger = logging.getLogger(__name__)

# A read that takes longer has failed: as long as a health check is given.
READ_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Backlog:
    # Jobs by status: the queue's depth, what runs, and the dead letter.
    counts: dict[str, int]
    # How long the oldest queued job has waited since it was due (0 when none is): a job
    # delayed on purpose, or waiting for its retry, counts from its time.
    oldest_wait_seconds: float


_OURS = {theirs: ours for ours, theirs in PGQUEUER_STATUS.items()}

# On the database's clock, which PgQueuer's `execute_after` is set by. The earliest time of the
# queued jobs is the oldest due job's when it has passed (none is due otherwise).
_PGQUEUER_BACKLOG = text(
    "SELECT status::text, count(*), extract(epoch FROM now() - min(execute_after))::float8 "
    "FROM pgqueuer GROUP BY status"
)


async def _query(settings: Settings, database: Database) -> Backlog:
    counts = dict.fromkeys(Status, 0)
    waited = 0.0
    async with database.engine.connect() as connection:
        if settings.jobs_backend is JobsBackend.PGQUEUER:
            for theirs, count, wait in await connection.execute(_PGQUEUER_BACKLOG):
                if theirs in _OURS:
                    counts[_OURS[theirs]] = count
                if theirs == "queued":
                    waited = wait
        else:
            earliest = func.min(JobRecord.run_after)
            rows = await connection.execute(
                select(JobRecord.status, func.count(), earliest).group_by(JobRecord.status)
            )
            for status, count, due in rows:
                counts[status] = count
                if status == Status.QUEUED:
                    waited = (utcnow() - due).total_seconds()
    return Backlog(
        counts={str(status): count for status, count in counts.items()},
        oldest_wait_seconds=max(0.0, waited),
    )


def _what_to_check(settings: Settings) -> str:
    backend = settings.jobs_backend
    if backend is JobsBackend.PGQUEUER:
        return "is a `conduit worker` running against this database, and keeping up?"
    if backend is JobsBackend.QSTASH:
        return (
            "jobs are handed to QStash after their commit: is QStash reachable, QSTASH_TOKEN right?"
        )
    if settings.jobs.run_in_api:
        return "this process runs them: are they failing, or slow?"
    return "is a `conduit worker` running on this database (CONDUIT_JOBS_RUN_IN_API is false)?"


async def read(settings: Settings, database: Database) -> Backlog | None:
    """The backlog, or None when the database does not answer within the read timeout (which
    is logged once per interval, as every such failure)."""
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            return await _query(settings, database)
    except (exc.DBAPIError, *UNAVAILABLE) as error:
        if not unavailable(error):
            raise
        report_unavailable(settings.database, error)
        return None


async def check(settings: Settings, database: Database) -> None:
    """Read the backlog, and warn when its oldest due job has waited longer than
    `wait_warning_seconds`."""
    backlog = await read(settings, database)
    threshold = settings.jobs.wait_warning_seconds
    if backlog is not None and backlog.oldest_wait_seconds > threshold:
        logger.warning(
            "jobs_waiting",
            extra={
                "oldest_wait_seconds": round(backlog.oldest_wait_seconds),
                "queued": backlog.counts[Status.QUEUED],
                "detail": f"the oldest job due has waited more than {threshold:g} s "
                f"(CONDUIT_JOBS_WAIT_WARNING_SECONDS): {_what_to_check(settings)}",
            },
        )


async def _watch(settings: Settings, database: Database) -> None:
    while True:
        await asyncio.sleep(settings.jobs.wait_check_seconds)
        try:
            await check(settings, database)
        except exc.DBAPIError as error:
            # A schema older than the release's (readiness says so): read again next time.
            logger.warning("jobs_check_failed", extra={"error": str(error.orig)})


@asynccontextmanager
async def watching(settings: Settings, database: Database) -> AsyncIterator[None]:
    """`check` once per `wait_check_seconds`, the first after one interval, until the block
    ends. Each API process checks (and may warn) for itself: a few queries a minute."""
    watcher = asyncio.create_task(_watch(settings, database))
    try:
        yield
    finally:
        watcher.cancel()
