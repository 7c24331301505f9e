"""Rate limiting's stores, each a real one: this process's memory, the Redis at
TEST_REDIS_URL, and Upstash's REST protocol served in front of that Redis
(`tests.upstash_rest`). The shared ones are skipped when TEST_REDIS_URL is not set."""

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from conduit import kv
from conduit.config import RedisSettings
from tests.upstash_rest import serving


@dataclass(frozen=True)
class UpstashEndpoint:
    url: str
    token: str


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if url is None:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it)")
    return url


@pytest.fixture(scope="session")
def upstash_endpoint(redis_url: str) -> Iterator[UpstashEndpoint]:
    token = secrets.token_urlsafe(16)
    with serving(redis_url, token) as url:
        yield UpstashEndpoint(url, token)


def store_settings(
    kind: str, request: pytest.FixtureRequest, *, timeout_seconds: float = 2.0
) -> RedisSettings:
    """Settings for a store of `kind`, its keys under the test run's prefix."""
    prefix: str = request.getfixturevalue("redis_settings").key_prefix
    url = rest_url = rest_token = None
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
    elif kind == "upstash":
        endpoint: UpstashEndpoint = request.getfixturevalue("upstash_endpoint")
        rest_url, rest_token = endpoint.url, SecretStr(endpoint.token)
    return RedisSettings(
        url=url,
        rest_url=rest_url,
        rest_token=rest_token,
        key_prefix=prefix,
        timeout_seconds=timeout_seconds,
    )


@pytest.fixture(params=["memory", "redis", "upstash"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[kv.Store]:
    async with kv.connect(store_settings(request.param, request)) as store:
        yield store


@pytest.fixture
def key_prefix(redis_settings: RedisSettings) -> str:
    """Keys of this test's own, under the run's prefix."""
    return f"{redis_settings.key_prefix}:{uuid.uuid4().hex[:12]}"
