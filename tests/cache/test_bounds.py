"""What one client can add to the shared store: nothing for what does not exist, nothing for
empty pages, at most its cache fills, none bigger than the largest entry; and a Redis full to
its `maxmemory` does not switch rate limiting off. The Redis is the test's own, so every key
in it is the test's."""

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio
from fastapi import FastAPI
from httpx import AsyncClient

from conduit import cache, kv
from conduit.config import CacheSettings, Rate, RateLimitSettings, RedisSettings
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests.app_clients import clients_of
from tests.factories import create_article, register
from tests.own_redis import OwnRedis, running
from tests.redis_keys import STORE_TIMEOUT_SECONDS

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    with running(tmp_path) as server:
        yield server


@pytest.fixture
async def store(own_redis: OwnRedis) -> AsyncIterator[kv.Store]:
    settings = RedisSettings(url=own_redis.url, timeout_seconds=STORE_TIMEOUT_SECONDS)
    async with kv.connect(settings) as store:
        yield store


def _on(
    app: FastAPI,
    store: kv.Store,
    *,
    fills: int = 1000,
    max_entry_bytes: int = 128 * 1024,
) -> None:
    """The cache and the rate limiter of a process configured with `store`."""
    rates = RateLimitSettings(cache_fills=Rate(quota=fills, window_seconds=300))
    connected = clients_of(app)
    app.state.clients = replace(
        connected,
        rate_limiter=RateLimiter(Policies.from_settings(rates), store, prefix="bounds"),
        cache=cache.create(
            CacheSettings(max_entry_bytes=max_entry_bytes),
            store,
            prefix="bounds",
            dialect=connected.database.engine.dialect,
        ),
    )


def _entries(keys: list[bytes]) -> list[bytes]:
    return sorted(key for key in keys if key.startswith(b"bounds:cache:1:"))


async def test_reads_of_what_does_not_exist_write_nothing(
    app: FastAPI, client: AsyncClient, store: kv.Store, own_redis: OwnRedis
) -> None:
    author = await register(client, "author")
    await create_article(client, author, title="There", tags=["known"])
    _on(app, store)
    # The client's rate-limit count, and the entry of a page that exists.
    assert (await client.get("/api/tags")).status_code == 200
    before = sorted(own_redis.stored_keys())

    missing = [
        "/api/articles/not-there",
        "/api/articles/not-there/comments",
        "/api/profiles/nobody",
    ]
    empty = [
        "/api/articles?tag=unknown",
        "/api/articles?author=nobody",
        "/api/articles?favorited=nobody",
        "/api/articles?offset=5000",
    ]
    for path in missing:
        assert (await client.get(path)).status_code == 404, path
    for path in empty:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.json()["articles"] == [], path

    assert sorted(own_redis.stored_keys()) == before


async def test_a_name_gets_its_version_when_its_document_is_stored(
    app: FastAPI, client: AsyncClient, store: kv.Store, own_redis: OwnRedis
) -> None:
    """Built before the article's comments had a version, the document is stored with it, and
    the next read is a hit."""
    author = await register(client, "author")
    slug = (await create_article(client, author))["slug"]
    _on(app, store)

    first = await client.get(f"/api/articles/{slug}/comments")
    second = await client.get(f"/api/articles/{slug}/comments")

    assert first.status_code == second.status_code == 200
    assert f"bounds:cache:v:comments:{slug}".encode() in own_redis.stored_keys()
    assert len(_entries(own_redis.stored_keys())) == 1


async def test_a_client_whose_fills_are_spent_is_answered_not_stored(
    app: FastAPI, client: AsyncClient, store: kv.Store, own_redis: OwnRedis
) -> None:
    author = await register(client, "author")
    slugs = [(await create_article(client, author, title=f"A{n}"))["slug"] for n in range(5)]
    _on(app, store, fills=3)

    for _ in range(2):
        for slug in slugs:
            response = await client.get(f"/api/articles/{slug}")
            assert response.status_code == 200
            assert response.json()["article"]["slug"] == slug

    assert len(_entries(own_redis.stored_keys())) == 3


async def test_a_document_bigger_than_the_largest_entry_is_served_not_stored(
    app: FastAPI, client: AsyncClient, store: kv.Store, own_redis: OwnRedis
) -> None:
    author = await register(client, "author")
    small = (await create_article(client, author, title="Small", body="b"))["slug"]
    big = (await create_article(client, author, title="Big", body="b" * 2_000))["slug"]
    _on(app, store, max_entry_bytes=1024)

    big_read = await client.get(f"/api/articles/{big}")
    small_read = await client.get(f"/api/articles/{small}")

    assert big_read.status_code == small_read.status_code == 200
    assert big_read.json()["article"]["body"] == "b" * 2_000
    [stored] = _entries(own_redis.stored_keys())
    assert stored.endswith(f":article:{small}".encode())


async def _fill(own_redis: OwnRedis) -> None:
    """The Redis past its `maxmemory`, evicting nothing: it refuses every write."""
    client = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        await client.set("filler", b"x" * 2_000_000)
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "1mb")
    finally:
        await client.aclose()


async def test_a_full_redis_does_not_switch_rate_limiting_off(
    store: kv.Store, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis at its `maxmemory` with `noeviction` refuses the limiter's scripts (they
    write): every policy is then counted in the process, not let through; the log says what
    to set."""
    await _fill(own_redis)
    rates = RateLimitSettings(anonymous=Rate(quota=2, window_seconds=60))
    limiter = RateLimiter(Policies.from_settings(rates), store, prefix="full")
    anonymous = limiter.policies.anonymous

    with caplog.at_level(logging.WARNING, logger="conduit.kv"):
        decisions = [(await limiter.limit(anonymous, "203.0.113.9"))[0] for _ in range(3)]

    assert store.outage.full
    assert [record.detail for record in caplog.records] == [  # type: ignore[attr-defined]
        f"REDIS_URL: 127.0.0.1:{own_redis.port} is out of memory and evicts nothing: set its "
        "maxmemory-policy to allkeys-lru (docs/deployment.md, Redis memory)"
    ]
    assert [decision.allowed if decision else None for decision in decisions] == [
        True,
        True,
        False,
    ]


async def test_a_full_redis_is_read_around_not_written(
    app: FastAPI, client: AsyncClient, store: kv.Store, own_redis: OwnRedis
) -> None:
    author = await register(client, "author")
    slug = (await create_article(client, author))["slug"]
    _on(app, store)
    await _fill(own_redis)

    reads = [await client.get(f"/api/articles/{slug}") for _ in range(3)]

    assert [read.status_code for read in reads] == [200, 200, 200]
    assert own_redis.stored_keys() == [b"filler"]
