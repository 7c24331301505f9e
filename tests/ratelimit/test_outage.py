"""When the shared store fails: requests keep being served, the general limits open with one
warning for the whole outage, sign-in keeps a limit in this process, and counting in the store
resumes when it is back. The store is a Redis server the test starts and stops itself."""

import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import SecretStr

from conduit import kv
from conduit.config import Rate, RateLimitSettings, RedisSettings
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests.app_clients import clients_of
from tests.own_redis import OwnRedis, running
from tests.redis_keys import STORE_TIMEOUT_SECONDS
from tests.upstash_rest import serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    with running(tmp_path) as server:
        yield server


@pytest.fixture(params=["redis", "upstash"])
async def failing_store(
    request: pytest.FixtureRequest, own_redis: OwnRedis
) -> AsyncIterator[kv.Store]:
    if request.param == "redis":
        settings = RedisSettings(url=own_redis.url, timeout_seconds=STORE_TIMEOUT_SECONDS)
        async with kv.connect(settings) as store:
            yield store
        return
    token = secrets.token_urlsafe(16)
    with serving(own_redis.url, token) as rest_url:
        settings = RedisSettings(
            rest_url=rest_url, rest_token=SecretStr(token), timeout_seconds=STORE_TIMEOUT_SECONDS
        )
        async with kv.connect(settings) as store:
            yield store


def _login(email: str) -> dict[str, dict[str, str]]:
    return {"user": {"email": email, "password": "guess"}}


async def test_while_the_store_is_down_requests_are_served_and_limiting_resumes_after(
    client: AsyncClient,
    app: FastAPI,
    failing_store: kv.Store,
    own_redis: OwnRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rates = RateLimitSettings.model_validate({"sign_in": Rate(quota=3, window_seconds=3600)})
    limiter = RateLimiter(Policies.from_settings(rates), failing_store, prefix="outage")
    app.state.clients = replace(clients_of(app), rate_limiter=limiter)
    before = await client.get("/api/tags")
    assert before.status_code == 200
    assert "RateLimit" in before.headers

    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="conduit.kv"):
        during = [await client.get("/api/tags") for _ in range(20)]
        sign_ins = [
            await client.post("/api/users/login", json=_login("nobody@example.com"))
            for _ in range(4)
        ]

    assert {r.status_code for r in during} == {200}
    assert not any("RateLimit" in r.headers for r in during)
    assert [r.status_code for r in sign_ins] == [401, 401, 401, 429]
    outages = [r for r in caplog.records if r.msg == "shared_store_unavailable"]
    assert len(outages) == 1

    own_redis.start()
    await anyio.sleep(kv.RETRY_AFTER_FAILURE_SECONDS + 0.1)
    after = await client.get("/api/tags")

    assert after.status_code == 200
    assert "RateLimit" in after.headers
    assert any(key.startswith(b"outage:ratelimit:anonymous:") for key in own_redis.stored_keys())


@pytest.mark.parametrize("kind", ["redis", "upstash"])
async def test_a_store_that_never_answers_costs_a_request_no_more_than_the_timeout(
    client: AsyncClient,
    app: FastAPI,
    silent_server: int,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = (
        RedisSettings(url=f"redis://127.0.0.1:{silent_server}/0", timeout_seconds=0.2)
        if kind == "redis"
        else RedisSettings(
            rest_url=f"http://127.0.0.1:{silent_server}",
            rest_token=SecretStr("token"),
            timeout_seconds=0.2,
        )
    )
    async with kv.connect(settings) as store:
        limiter = RateLimiter(Policies.from_settings(RateLimitSettings()), store, prefix="silent")
        app.state.clients = replace(clients_of(app), rate_limiter=limiter)
        # Without the timeout the first request would wait for the store forever.
        with anyio.fail_after(5), caplog.at_level(logging.WARNING, logger="conduit.kv"):
            responses = [await client.get("/api/tags") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.msg for r in caplog.records] == ["shared_store_unavailable"]
    assert caplog.records[0].error == "TimeoutError"  # type: ignore[attr-defined]
    where = f"127.0.0.1:{silent_server}"
    assert caplog.records[0].detail == (  # type: ignore[attr-defined]
        f"REDIS_URL: no answer from {where} within 0.2 s: is it reachable from here (a "
        "firewall, another network)? CONDUIT_REDIS_TIMEOUT_SECONDS sets the wait"
        if kind == "redis"
        else f"UPSTASH_REDIS_REST_URL: no answer from {where} within 0.2 s: if the database is "
        "in another region, raise CONDUIT_REDIS_TIMEOUT_SECONDS"
    )
