"""Jobs put on PgQueuer's queue by a request's own transaction (`conduit worker` runs them:
`conduit.jobs.postgres`). The insert goes through the unit of work's connection, so a
rolled-back request enqueues nothing and a committed one cannot lose its jobs.

PgQueuer is imported with the first job a process puts: its package imports all of it (worker,
scheduler, command line), ~50 ms that every API start on PostgreSQL paid before its first
request, whether or not it ever enqueued a job.
"""

from datetime import timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from conduit.jobs.core import Job

if TYPE_CHECKING:
    from pgqueuer.ports.driver import Driver


class _UnitOfWorkDriver:
    """PgQueuer's driver port on a unit of work's connection: its statements join that
    transaction (starting it if nothing else has yet). Enqueueing is all it is for, and
    that only fetches; listening and notifying belong to a worker's own connection."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def fetch(self, query: str, *args: object) -> list[dict[str, object]]:
        result = await self._connection.exec_driver_sql(query, args)
        return [dict(row) for row in result.mappings()]

    async def execute(self, query: str, *args: object) -> str:
        await self._connection.exec_driver_sql(query, args)
        return ""


class PgQueuerQueue:
    async def put(self, session: AsyncSession, job: Job, *, delay: timedelta | None) -> None:
        from pgqueuer.adapters.persistence.queries import Queries  # noqa: PLC0415 (see above)

        driver = cast("Driver", _UnitOfWorkDriver(await session.connection()))
        queries = Queries(driver)
        await queries.enqueue(job.task, job.encode(), execute_after=delay, dedupe_key=str(job.id))
