"""The unit of work, the one place that commits: one transaction per request (`Session`) and
per job, and the work recorded for after its commit."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conduit import clients, request_state
from conduit.database.read_path import Reader
from conduit.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

    # Above the database in the layers, and importing it: named for the types only.
    from conduit.cache import Cache
    from conduit.database.replicas import Replicas
    from conduit.jobs.core import Queue
    from conduit.jobs.outbox import JobRecord

AfterCommit = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class SessionState:
    """What travels with a unit of work's session (`state_of`): the process's clients for the
    services to use, and what they leave for after the commit."""

    # Invalidates what the services say they changed (`conduit.cache.changed`) once the unit of
    # work commits.
    cache: "Cache | None" = None
    # Records the jobs the services enqueue in the same transaction (`conduit.jobs.enqueue`).
    queue: "Queue | None" = None
    after_commit: list[AfterCommit] = field(default_factory=list)
    # The cache names changed so far (`conduit.cache.changed`); None before the first.
    changed: set[str] | None = None
    # The rows the outbox has put in the `jobs` table (`conduit.jobs.outbox`); None before the
    # first.
    outbox: list["JobRecord"] | None = None
    # Users besides the caller whose next reads must see this unit of work's writes
    # (`follow_writes_of`).
    followers: set[int] = field(default_factory=set)


class NotGiven(LookupError):
    """A service needed what its unit of work was opened without: `transaction` is given the
    cache where the services change cached documents, the job queue where they enqueue."""


def state_of(session: AsyncSession) -> SessionState:
    """The state of the unit of work that opened the session (`transaction`)."""
    state: SessionState = session.info[SessionState]
    return state


def after_commit(session: AsyncSession, hook: AfterCommit) -> None:
    """Run `hook` once the session's unit of work has committed, before its response is sent;
    never if it rolls back. How work for later (cache invalidation) leaves the process only
    with the writes it follows from."""
    state_of(session).after_commit.append(hook)


async def _commit(session: AsyncSession) -> None:
    await session.commit()
    state = state_of(session)
    hooks, state.after_commit = state.after_commit, []
    for hook in hooks:
        await hook()


@contextlib.asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
    *,
    cache: "Cache | None" = None,
    queue: "Queue | None" = None,
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back if anything raised (except
    an `AppError` that `keeps_changes`). `cache` and `queue`, the process's, travel with the
    session for the services to use (`SessionState`)."""
    async with sessions() as session:
        session.info[SessionState] = SessionState(cache=cache, queue=queue)
        try:
            yield session
        except AppError as error:
            if error.keeps_changes:
                await _commit(session)
            raise
        await _commit(session)


def follow_writes_of(session: AsyncSession, user_id: int) -> None:
    """The user's next reads, on any process, see this unit of work's writes once it has
    committed (`conduit.database.replicas`), as the caller's do: for writes that end another
    user's credentials, or a caller's who has not signed in."""
    state_of(session).followers.add(user_id)


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the endpoint returns, before the response is
    sent, and rolled back if anything raised. Only routes that write ask for one: with
    replicas, the primary's position after its commit is recorded for the caller
    (`conduit.database.replicas`)."""
    connected = clients.of(request)
    async with transaction(
        connected.database.sessions, cache=connected.cache, queue=connected.jobs.queue
    ) as session:
        if connected.replicas is not None:
            after_commit(session, partial(_written, connected.replicas, request, session))
        yield session


async def _written(replicas: "Replicas", request: Request, session: AsyncSession) -> None:
    followers = state_of(session).followers
    caller = request_state.of(request.scope).user_id
    if caller is not None:
        followers.add(caller)
    if followers:
        await replicas.positions.record(followers, await replicas.position())


async def read_session(request: Request) -> Reader:
    """The reads outside a write: on replicas where there are some (`conduit.database.replicas`)."""
    connected = clients.of(request)
    if connected.replicas is None:
        return connected.database.reader
    return connected.replicas.reader(request_state.of(request.scope))


Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
ReadSession = Annotated[Reader, Depends(read_session)]


def insert(session: AsyncSession, table: Any) -> "postgresql.Insert | sqlite.Insert":
    """An INSERT that supports `ON CONFLICT DO NOTHING` on the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        # Here: the dialect's modules are a twentieth of a SQLite process's start, and the
        # engine has imported them already on PostgreSQL.
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415

        return postgresql.insert(table)
    return sqlite.insert(table)
