"""Every client a Conduit process holds (database, shared store, read cache, jobs), created in
one place and closed in the reverse order: the app's lifespan and `conduit worker` both use
`connect`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from conduit import cache, database, jobs, kv
from conduit.config import Settings
from conduit.tasks import SCHEDULES, TASKS


@dataclass(frozen=True, slots=True)
class Clients:
    database: database.Database
    store: kv.Store
    cache: cache.Cache
    jobs: jobs.Jobs


@asynccontextmanager
async def connect(settings: Settings, *, run_embedded_jobs: bool) -> AsyncIterator[Clients]:
    async with (
        database.connect(settings.database) as db,
        kv.connect(settings.redis) as store,
        cache.connect(
            settings.cache, store, prefix=settings.redis.key_prefix, dialect=db.engine.dialect
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
        yield Clients(database=db, store=store, cache=read_cache, jobs=background)
