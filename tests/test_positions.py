"""Where each user's last write is kept for reads on replicas (`conduit.database.replicas`):
in Redis when it is configured, else in this process's memory. Either way the later of two
positions stays, whatever order they are recorded in, and only for the time that matters."""

import anyio
import pytest

from conduit import kv
from conduit.config import RedisSettings
from conduit.database.replicas import MemoryPositions, Positions, SharedPositions

pytestmark = pytest.mark.anyio


async def _recorded_out_of_order(positions: Positions) -> None:
    await positions.record([1, 2], 500)
    await positions.record([1], 300)
    await positions.record([2], 700)

    assert await positions.of(1) == 500
    assert await positions.of(2) == 700
    assert await positions.of(3) == 0


async def test_in_memory_the_later_position_stays_until_it_expires() -> None:
    positions = MemoryPositions(ttl_seconds=1)
    await _recorded_out_of_order(positions)

    await anyio.sleep(1.1)

    assert await positions.of(1) == 0


async def test_in_redis_the_later_position_stays_until_it_expires(
    redis_settings: RedisSettings,
) -> None:
    if redis_settings.url is None:
        pytest.skip("TEST_REDIS_URL is not set (CI sets it)")
    async with kv.connect(redis_settings) as store:
        assert not isinstance(store, kv.Memory)
        positions = SharedPositions(store, prefix=redis_settings.key_prefix, ttl_seconds=1)
        await _recorded_out_of_order(positions)

        await anyio.sleep(1.1)

        assert await positions.of(1) == 0
