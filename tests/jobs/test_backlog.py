"""Jobs piling up (`conduit.jobs.backlog`), on the backend of the database under test: how long
the oldest due job has waited, in the metrics and in the API's warning."""

import logging
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from conduit.config import DatabaseSettings, JobsSettings, Settings
from conduit.database import connect as connect_database
from conduit.jobs import Arguments, Job, JobContext, backlog, enqueue, task
from conduit.jobs.outbox import JobRecord
from tests.app_clients import clients_of
from tests.databases import stamp_revision

pytestmark = pytest.mark.anyio

WAITED = timedelta(minutes=10)


@task("tests.waiting", Arguments)
async def waiting(_: JobContext, __: Job, ___: Arguments) -> None:
    """Never run here: the tests look at jobs no worker has taken."""


async def _enqueue(app: FastAPI, *, delay: timedelta | None = None) -> None:
    background = clients_of(app).jobs
    async with background.context.unit_of_work() as session:
        await enqueue(session, waiting, Arguments(), delay=delay)


async def _backdate(engine: AsyncEngine) -> None:
    """Every queued job due `WAITED` earlier than it was: as if it had waited that long."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text(
                    "UPDATE pgqueuer SET execute_after = execute_after - CAST(:waited AS interval)"
                ),
                {"waited": WAITED},
            )
            return
        for job_id, due in await connection.execute(select(JobRecord.id, JobRecord.run_after)):
            await connection.execute(
                update(JobRecord).where(JobRecord.id == job_id).values(run_after=due - WAITED)
            )


async def test_the_oldest_due_job_s_wait_is_read_and_warned_past_the_threshold(
    app: FastAPI,
    settings: Settings,
    engine: AsyncEngine,
    committing_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _enqueue(app)
    await _enqueue(app, delay=timedelta(hours=1))
    await _backdate(engine)
    patient = settings.model_copy(update={"jobs": JobsSettings(wait_warning_seconds=3600)})

    database = clients_of(app).database
    read = await backlog.read(settings, database)
    with caplog.at_level(logging.WARNING, logger="conduit.jobs.backlog"):
        await backlog.check(patient, database)
        assert caplog.records == []
        await backlog.check(settings, database)
    scrape = await committing_client.get("/metrics")

    assert read is not None
    assert read.counts["queued"] == 2
    assert WAITED.total_seconds() <= read.oldest_wait_seconds < 3600
    [warning] = caplog.records
    assert warning.getMessage() == "jobs_waiting"
    assert warning.queued == 2  # type: ignore[attr-defined]
    assert warning.oldest_wait_seconds >= WAITED.total_seconds()  # type: ignore[attr-defined]
    assert warning.detail.startswith(  # type: ignore[attr-defined]
        "the oldest job due has waited more than 300 s (CONDUIT_JOBS_WAIT_WARNING_SECONDS): "
        "is a `conduit worker` running"
    )
    [age] = [
        sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == "conduit_jobs_oldest_queued_age_seconds"
    ]
    assert age >= WAITED.total_seconds()


async def test_a_job_delayed_on_purpose_is_not_waiting(
    app: FastAPI, settings: Settings, committing_client: AsyncClient
) -> None:
    del committing_client  # empties the tables afterwards
    await _enqueue(app, delay=timedelta(hours=1))

    read = await backlog.read(settings, clients_of(app).database)

    assert read is not None
    assert read.counts["queued"] == 1
    assert read.oldest_wait_seconds == 0


class _Failures(logging.Handler):
    """The backlog's log lines, and an event set at the second."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.second = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if len(self.records) == 2:
            self.second.set()


async def test_the_api_keeps_checking_when_a_check_fails(
    settings: Settings, tmp_path: Path
) -> None:
    """A database without the jobs table (here, a later release's schema with nothing in it)
    fails each check with one line; the next still comes."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    await stamp_revision(url, "0a1b2c3d4e5f")
    embedded = settings.model_copy(
        update={
            "database": DatabaseSettings(url=url),
            "jobs": JobsSettings(wait_check_seconds=0.01),
        }
    )
    failures = _Failures()
    logger = logging.getLogger("conduit.jobs.backlog")
    logger.addHandler(failures)
    try:
        async with (
            connect_database(embedded.database) as database,
            backlog.watching(embedded, database),
        ):
            with anyio.fail_after(30):
                await failures.second.wait()
    finally:
        logger.removeHandler(failures)

    assert [record.getMessage() for record in failures.records[:2]] == ["jobs_check_failed"] * 2
    assert failures.records[0].error == "no such table: jobs"  # type: ignore[attr-defined]
