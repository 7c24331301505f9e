"""Every client a Conduit process holds (its settings, database, shared store, read cache, jobs,
password hasher and rate limiter), created in one place and closed in the reverse order: the
app's lifespan and `conduit worker` both use `connect`. The app keeps them in
`app.state.clients`; a request reaches them through `of`.

The modules these clients come from read them through `of` (the unit of work, the cache, rate
limiting, authentication) or import modules that do: this module names their types for the type
checker only, and imports them when it connects.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from conduit.config import Settings

if TYPE_CHECKING:
    from conduit import cache, database, jobs, kv
    from conduit.auth.passwords import PasswordHasher
    from conduit.database import replicas as database_replicas
    from conduit.ratelimit.limiter import RateLimiter


@dataclass(frozen=True, slots=True)
class Clients:
    settings: Settings
    database: "database.Database"
    store: "kv.Store"
    # None without `DATABASE_REPLICA_URLS`, and on SQLite.
    replicas: "database_replicas.Replicas | None"
    cache: "cache.Cache"
    jobs: "jobs.Jobs"
    password_hasher: "PasswordHasher"
    # None when rate limiting is off (`CONDUIT_RATE_LIMIT_ENABLED=false`).
    rate_limiter: "RateLimiter | None"


def of(request: Request) -> Clients:
    """The clients of the app serving the request, as its lifespan connected them."""
    clients: Clients = request.app.state.clients
    return clients


@asynccontextmanager
async def connect(settings: Settings, *, run_embedded_jobs: bool) -> AsyncIterator[Clients]:
    from conduit import cache, database, jobs, kv
    from conduit.auth.passwords import PasswordHasher
    from conduit.database import replicas
    from conduit.ratelimit.limiter import RateLimiter
    from conduit.ratelimit.policies import Policies
    from conduit.tasks import SCHEDULES, TASKS

    prefix = settings.redis.key_prefix
    async with (
        database.connect(settings.database) as db,
        kv.connect(settings.redis) as store,
        replicas.connect(
            settings.database, db.reader, db.engine.dialect, store, prefix=prefix
        ) as routing,
        cache.connect(
            settings.cache,
            store,
            prefix=prefix,
            dialect=db.engine.dialect,
            position=None if routing is None else routing.position,
        ) as read_cache,
        jobs.connect(
            settings,
            db,
            read_cache,
            tasks=TASKS,
            schedules=SCHEDULES,
            run_embedded=run_embedded_jobs,
        ) as background,
    ):
        rate_limiter = (
            RateLimiter(Policies.from_settings(settings.rate_limit), store, prefix=prefix)
            if settings.rate_limit.enabled
            else None
        )
        yield Clients(
            settings=settings,
            database=db,
            store=store,
            replicas=routing,
            cache=read_cache,
            jobs=background,
            password_hasher=PasswordHasher(settings.auth.hash_concurrency),
            rate_limiter=rate_limiter,
        )
