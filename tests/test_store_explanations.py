"""What a line about a shared store that fails says: the variable to fix, where it points, and
what to check, never a password or a token. The stores are real: ports nothing listens on, a
Redis of the test's own, and the Upstash REST emulator in front of the tests' Redis."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from conduit import kv
from conduit.config import RedisSettings
from tests.own_redis import OwnRedis, running
from tests.threaded import free_port
from tests.upstash_rest import Endpoint

pytestmark = pytest.mark.anyio

PASSWORD = "the-redis-password"


async def _explained(settings: RedisSettings, *command: str) -> str:
    async with kv.connect(settings) as store:
        assert not isinstance(store, kv.Memory)
        with pytest.raises(kv.Unavailable) as failed:
            await store.run([command or ("PING",)])
        return store.outage.explain(failed.value)


async def test_redis_refusing_the_connection() -> None:
    port = free_port()
    explained = await _explained(RedisSettings(url=f"redis://:{PASSWORD}@127.0.0.1:{port}/0"))

    assert explained == (
        f"REDIS_URL: connection refused by 127.0.0.1:{port}: is Redis running there, on that port?"
    )


async def test_a_redis_host_that_does_not_resolve() -> None:
    settings = RedisSettings(url="redis://no-such-host.invalid:6379/0", timeout_seconds=5)

    assert await _explained(settings) == (
        "REDIS_URL: cannot resolve the host 'no-such-host.invalid': is the name right?"
    )


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    with running(tmp_path, password=PASSWORD) as server:
        yield server


async def test_redis_refusing_the_password(guarded_redis: OwnRedis) -> None:
    wrong = f"redis://:not-{PASSWORD}@127.0.0.1:{guarded_redis.port}/0"

    explained = await _explained(RedisSettings(url=wrong, timeout_seconds=2))

    assert explained == (
        f"REDIS_URL: 127.0.0.1:{guarded_redis.port} refused the credentials: check the user and "
        "password in it"
    )


async def test_upstash_refusing_the_connection() -> None:
    port = free_port()
    settings = RedisSettings(
        rest_url=f"http://127.0.0.1:{port}", rest_token=SecretStr("t"), timeout_seconds=2
    )

    assert await _explained(settings) == (
        f"UPSTASH_REDIS_REST_URL: connection refused by 127.0.0.1:{port}: is the URL right?"
    )


async def test_upstash_refusing_the_token(upstash_endpoint: Endpoint) -> None:
    token = f"not-{upstash_endpoint.token}"
    settings = RedisSettings(
        rest_url=upstash_endpoint.url, rest_token=SecretStr(token), timeout_seconds=2
    )

    explained = await _explained(settings)

    assert explained == (
        f"UPSTASH_REDIS_REST_TOKEN: {upstash_endpoint.url.removeprefix('http://')} refused the "
        "request: is the token this database's?"
    )
    assert token not in explained


async def test_any_other_failure_is_named_with_its_cause(upstash_endpoint: Endpoint) -> None:
    settings = RedisSettings(
        rest_url=upstash_endpoint.url,
        rest_token=SecretStr(upstash_endpoint.token),
        timeout_seconds=2,
    )
    command = f"NO-SUCH-COMMAND-{secrets.token_hex(4)}"

    explained = await _explained(settings, command)

    where = upstash_endpoint.url.removeprefix("http://")
    assert explained.startswith(
        f"UPSTASH_REDIS_REST_URL: {where} unavailable: unknown command '{command}'"
    )
