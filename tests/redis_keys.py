"""The tests' own keys in a Redis they share with others: found by prefix, never flushed."""

import redis.asyncio


async def delete_keys(url: str, pattern: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        return await client.delete(*keys) if keys else 0
    finally:
        await client.aclose()
