"""The tests' own keys in a Redis they share with others: found by prefix, never flushed."""

import redis.asyncio

# Every store call the app makes in a test whose subject is not the timeout: production's
# 0.25 s is met on a loaded machine, and a call that times out is an outage (the cache
# bypassed, rate limits counted in the process), which would fail a test about something else.
STORE_TIMEOUT_SECONDS = 5.0


async def delete_keys(url: str, pattern: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        return await client.delete(*keys) if keys else 0
    finally:
        await client.aclose()
