"""The cache while its Redis is down and after: reads go to the database, writes succeed, and
no entry from before the outage is served once it is back, though the write's invalidation was
lost and the Redis kept its entries across the restart. The Redis is the test's own."""

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from conduit import cache, kv
from conduit.config import RateLimitSettings, RedisSettings, Settings
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests.app_clients import clients_of
from tests.factories import auth, create_article, register
from tests.own_redis import OwnRedis, running
from tests.redis_keys import STORE_TIMEOUT_SECONDS
from tests.statements import StatementRecorder

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    with running(tmp_path, persistent=True) as server:
        yield server


def _settings(own_redis: OwnRedis) -> RedisSettings:
    return RedisSettings(url=own_redis.url, timeout_seconds=STORE_TIMEOUT_SECONDS)


@pytest.fixture
async def store(own_redis: OwnRedis) -> AsyncIterator[kv.Store]:
    async with kv.connect(_settings(own_redis)) as store:
        yield store


class _Restored(logging.Handler):
    """Set when the cache has given the store a new epoch (retried every second once the store
    answers, however long the machine takes to)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "cache_restored":
            self.event.set()


@pytest.fixture
async def restored(caplog: pytest.LogCaptureFixture) -> AsyncIterator[anyio.Event]:
    handler = _Restored()
    logger = logging.getLogger("conduit.cache.core")
    logger.addHandler(handler)
    with caplog.at_level(logging.INFO, logger=logger.name):
        yield handler.event
    logger.removeHandler(handler)


def _on(app: FastAPI, settings: Settings, store: kv.Store) -> None:
    """The app given a cache, and the rate limiter whose round trips carry its lookups, on
    `store`: what a process configured with that Redis has."""
    connected = clients_of(app)
    app.state.clients = replace(
        connected,
        rate_limiter=RateLimiter(
            Policies.from_settings(RateLimitSettings()), store, prefix="outage"
        ),
        cache=cache.create(
            settings.cache, store, prefix="outage", dialect=connected.database.engine.dialect
        ),
    )


async def test_no_entry_from_before_an_outage_is_served_after_it(
    *,
    app: FastAPI,
    settings: Settings,
    client: AsyncClient,
    store: kv.Store,
    own_redis: OwnRedis,
    statements: StatementRecorder,
    caplog: pytest.LogCaptureFixture,
    restored: anyio.Event,
) -> None:
    _on(app, settings, store)
    author = await register(client, "author")
    slug = (await create_article(client, author, title="Before"))["slug"]
    path = f"/api/articles/{slug}"
    await client.get(path)
    statements.clear()
    assert (await client.get(path)).json()["article"]["title"] == "Before"
    assert statements.count == 0

    own_redis.stop()
    with caplog.at_level(logging.WARNING):
        update = await client.put(path, headers=auth(author), json={"article": {"title": "During"}})
        during = await client.get(path)

    assert update.status_code == 200
    assert (during.status_code, during.json()["article"]["title"]) == (200, "During")
    assert [r.msg for r in caplog.records] == ["shared_store_unavailable", "cache_bypassed"]

    own_redis.start()
    assert any(b":cache:1:" in key for key in own_redis.stored_keys())
    right_after = await client.get(path)
    with anyio.fail_after(30):
        await restored.wait()
    await client.get(path)
    statements.clear()
    settled = await client.get(path)
    # Another process on the same Redis, which saw nothing of the outage.
    async with kv.connect(_settings(own_redis)) as other_store:
        _on(app, settings, other_store)
        elsewhere = await client.get(path)

    assert right_after.json()["article"]["title"] == "During"
    assert settled.json()["article"]["title"] == "During"
    assert statements.count == 0, "caching resumes once a new epoch is set"
    assert elsewhere.json()["article"]["title"] == "During"
