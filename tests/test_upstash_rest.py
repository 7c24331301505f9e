"""The Upstash REST emulator speaks pipelines as Upstash does: the unmodified `upstash-redis`
client sends a batch to `/pipeline` and reads one result or error per command, decoded the way
it asked for (base64 or not)."""

import secrets
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
from upstash_redis.asyncio import Redis
from upstash_redis.errors import UpstashError

from tests.redis_keys import delete_keys
from tests.upstash_rest import Endpoint

pytestmark = pytest.mark.anyio

INCREMENT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = f"conduit-test-upstash-{secrets.token_hex(6)}"
    yield prefix
    await delete_keys(redis_url, f"{prefix}:*")


@pytest.fixture(params=["base64", None])
async def upstash(
    request: pytest.FixtureRequest, upstash_endpoint: Endpoint
) -> AsyncIterator[Redis]:
    encoding: Literal["base64"] | None = request.param
    async with Redis(
        upstash_endpoint.url,
        upstash_endpoint.token,
        rest_encoding=encoding,
        rest_retries=0,
        allow_telemetry=False,
    ) as client:
        yield client


async def test_a_pipeline_answers_each_command_in_order(upstash: Redis, prefix: str) -> None:
    pipeline = upstash.pipeline()
    pipeline.set(f"{prefix}:count", "1")
    pipeline.set(f"{prefix}:name", "déjà vu", ex=60)
    pipeline.get(f"{prefix}:name")
    pipeline.mget(f"{prefix}:count", f"{prefix}:name", f"{prefix}:missing")
    pipeline.eval(INCREMENT, [f"{prefix}:count"], ["41"])
    pipeline.get(f"{prefix}:missing")

    results = await pipeline.exec()

    assert results == [True, True, "déjà vu", ["1", "déjà vu", None], 42, None]
    assert await upstash.get(f"{prefix}:count") == "42"


async def test_a_failing_command_fails_the_batch_but_not_the_others(
    upstash: Redis, prefix: str
) -> None:
    pipeline = upstash.pipeline()
    pipeline.set(f"{prefix}:name", "text")
    pipeline.incr(f"{prefix}:name")
    pipeline.set(f"{prefix}:after", "ran")

    with pytest.raises(UpstashError, match="not an integer"):
        await pipeline.exec()

    assert await upstash.mget(f"{prefix}:name", f"{prefix}:after") == ["text", "ran"]


async def test_a_pipeline_needs_the_token(upstash_endpoint: Endpoint) -> None:
    url = upstash_endpoint.url
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            f"{url}/pipeline", json=[["GET", "anything"]], headers={"Authorization": "Bearer no"}
        )

    assert (response.status_code, response.json()) == (401, {"error": "Unauthorized"})
