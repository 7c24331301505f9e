"""Rate limiting's stores, each a real one: this process's memory, the Redis at
TEST_REDIS_URL, and Upstash's REST protocol served in front of that Redis
(`tests.upstash_rest`). The shared ones are skipped when TEST_REDIS_URL is not set."""

import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from conduit import kv
from conduit.config import RedisSettings
from tests.redis_keys import STORE_TIMEOUT_SECONDS
from tests.upstash_rest import Endpoint


def store_settings(kind: str, request: pytest.FixtureRequest) -> RedisSettings:
    """Settings for a store of `kind`, its keys under the test run's prefix."""
    prefix: str = request.getfixturevalue("redis_settings").key_prefix
    url = rest_url = rest_token = None
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
    elif kind == "upstash":
        endpoint: Endpoint = request.getfixturevalue("upstash_endpoint")
        rest_url, rest_token = endpoint.url, SecretStr(endpoint.token)
    return RedisSettings(
        url=url,
        rest_url=rest_url,
        rest_token=rest_token,
        key_prefix=prefix,
        timeout_seconds=STORE_TIMEOUT_SECONDS,
    )


@pytest.fixture(params=["memory", "redis", "upstash"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[kv.Store]:
    async with kv.connect(store_settings(request.param, request)) as store:
        yield store


@pytest.fixture
def key_prefix(redis_settings: RedisSettings) -> str:
    """Keys of this test's own, under the run's prefix."""
    return f"{redis_settings.key_prefix}:{uuid.uuid4().hex[:12]}"
