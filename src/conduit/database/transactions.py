"""The unit of work, the one place that commits: one transaction per request (`Session`) and
per job, and the work recorded for after its commit."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conduit.database.engine import Database
from conduit.database.read_path import Reader
from conduit.errors import AppError

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "conduit.after_commit"


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's unit of work has committed, before its response is sent;
    never if it rolls back. How work for later (cache invalidation) leaves the process only
    with the writes it follows from."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


async def _commit(session: AsyncSession) -> None:
    await session.commit()
    hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for hook in hooks:
        await hook()


@contextlib.asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], info: Mapping[str, object] | None = None
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back if anything raised (except
    an `AppError` that `keeps_changes`). `info` goes into the session's `info` (the process's
    cache and job queue, for the services to use: `CACHE`, `JOBS`)."""
    async with sessions() as session:
        session.info.update(info or {})
        try:
            yield session
        except AppError as error:
            if error.keeps_changes:
                await _commit(session)
            raise
        await _commit(session)


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


# Where a unit of work's session keeps the process's read cache, which invalidates what the
# services say they changed (`conduit.cache.changed`) once the unit of work commits.
CACHE = "conduit.cache"
# And the process's job queue, which records the jobs the services enqueue in the same
# transaction (`conduit.jobs.enqueue`).
JOBS = "conduit.jobs"


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, before the response is
    sent, and rolled back if anything raised."""
    state = request.app.state
    info = {CACHE: state.cache, JOBS: state.queue}
    async with transaction(database_of(request).sessions, info) as session:
        yield session


async def read_session(request: Request) -> Reader:
    return database_of(request).reader


Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
ReadSession = Annotated[Reader, Depends(read_session)]


def insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports `ON CONFLICT DO NOTHING` on the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
