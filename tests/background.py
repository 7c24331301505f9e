"""Running the app's jobs when a test says, as its backend runs them."""

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from conduit.config import Settings
from conduit.jobs import Jobs, Task
from conduit.jobs.outbox import EmbeddedWorker, JobRecord, Status
from tests.app_clients import clients_of


async def run_jobs(
    app: FastAPI,
    tasks: Mapping[str, Task[Any]] | None = None,
    *,
    settings: Settings | None = None,
) -> None:
    """Run the app's jobs until none is due or waiting for a retry (those held as failed
    excepted): on PostgreSQL a PgQueuer worker draining the queue, on SQLite the embedded
    worker. `tasks` and `settings` replace the app's own."""
    jobs = clients_of(app).jobs
    tasks = jobs.tasks if tasks is None else tasks
    context = jobs.context if settings is None else replace(jobs.context, settings=settings)
    if jobs.embedded is None:
        from conduit.jobs import postgres  # noqa: PLC0415 (PgQueuer only where it is used)

        await postgres.work(context, tasks, {}, stop=asyncio.Event(), drain=True)
        return
    worker = EmbeddedWorker(tasks, {})
    while True:
        if not await worker.run_due(context) and not await _waiting(jobs):
            return
        # A retry that is not due yet.
        await asyncio.sleep(0.01)


async def _waiting(jobs: Jobs) -> bool:
    async with jobs.context.database.sessions() as session:
        count = await session.scalar(
            select(func.count()).where(JobRecord.status.in_([Status.QUEUED, Status.RUNNING]))
        )
    return bool(count)
