"""upstash-ratelimit's three algorithms (fixed window, sliding window, token bucket) in a shared
store. Each decision is one atomic server-side script, one round trip: the library's own
scripts, sent by its own client to Upstash over REST, and by redis-py to Redis over TCP
(`_RedisCommands`). Both lay out their keys as the library does, so processes on either path
share one count.

Imported only when a shared store is configured: the clients cost a process ~16 MiB and a
third of a second at start-up.
"""

import asyncio
import json
from collections.abc import Iterable
from typing import cast

import httpx
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError
from upstash_ratelimit.asyncio import FixedWindow, Ratelimit, SlidingWindow, TokenBucket
from upstash_ratelimit.limiter import Limiter as UpstashLimiter
from upstash_redis.asyncio import Redis as UpstashRedis
from upstash_redis.errors import UpstashError

from conduit import kv
from conduit.config import Algorithm
from conduit.ratelimit.policies import Decision, Policy

# What a call to each store raises when the store, not the caller, is at fault.
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)
# httpx's errors for the transport, JSONDecodeError for a body that is not Upstash's JSON.
_UPSTASH_ERRORS = (UpstashError, httpx.HTTPError, json.JSONDecodeError, TimeoutError)


def _algorithm(policy: Policy) -> UpstashLimiter:
    match policy.algorithm:
        case Algorithm.SLIDING_WINDOW:
            return SlidingWindow(max_requests=policy.quota, window=policy.window_ms, unit="ms")
        case Algorithm.FIXED_WINDOW:
            return FixedWindow(max_requests=policy.quota, window=policy.window_ms, unit="ms")
        case Algorithm.TOKEN_BUCKET:
            return TokenBucket(
                max_tokens=policy.quota,
                refill_rate=1,
                interval=policy.refill_interval_ms,
                unit="ms",
            )


class _RedisCommands:
    """The commands upstash-ratelimit's limiters send to their client, over redis-py.

    Scripts run by their hash (EVALSHA), without their first line: `#!lua
    flags=allow-key-locking` is a hint to Upstash's engine that Redis refuses.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    async def eval(self, script: str, keys: list[str], args: list[int | str]) -> object:
        runnable = self._scripts.get(script)
        if runnable is None:
            body = script.partition("\n")[2] if script.startswith("#!") else script
            runnable = self._scripts[script] = self._client.register_script(body)
        try:
            # Straight to EVALSHA: the script object's own call imports and type-checks on
            # every call, a tenth of a decision's CPU.
            return await self._client.evalsha(runnable.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A Redis that restarted has forgotten it: the script object loads it and runs.
            return await runnable(keys=keys, args=args)

    async def get(self, key: str) -> bytes | str | None:
        return await self._client.get(key)

    async def mget(self, *keys: str) -> list[bytes | str | None]:
        return await self._client.mget(keys)

    async def hmget(self, key: str, *fields: str) -> list[bytes | str | None]:
        return await self._client.hmget(key, list(fields))

    async def hget(self, key: str, field: str) -> bytes | str | None:
        return await self._client.hget(key, field)


class SharedLimiter:
    """The policies counted by upstash-ratelimit in Redis or Upstash; a store that fails or
    is slower than its timeout raises `kv.Unavailable`."""

    def __init__(self, store: kv.Redis | kv.Upstash, policies: Iterable[Policy], prefix: str):
        if isinstance(store, kv.Redis):
            # upstash-ratelimit types its client as Upstash's, and calls only the five
            # commands `_RedisCommands` has (tests/ratelimit run every algorithm through it).
            client = cast("UpstashRedis", _RedisCommands(store.client))
            self._errors: tuple[type[Exception], ...] = _REDIS_ERRORS
        else:
            client = store.client
            self._errors = _UPSTASH_ERRORS
        self._timeout = store.timeout_seconds
        self._limits = {
            policy.name: Ratelimit(
                client, _algorithm(policy), prefix=f"{prefix}:{policy.name}:{policy.algorithm}"
            )
            for policy in policies
        }

    async def limit(self, policy: Policy, identifier: str) -> Decision:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._limits[policy.name].limit(identifier)
        except self._errors as error:
            raise kv.Unavailable(policy.name) from error
        return Decision(policy, response.allowed, response.remaining, response.reset)

    async def peek(self, policy: Policy, identifier: str) -> Decision:
        ratelimit = self._limits[policy.name]
        try:
            async with asyncio.timeout(self._timeout):
                remaining = await ratelimit.get_remaining(identifier)
                reset_at = await ratelimit.get_reset(identifier)
        except self._errors as error:
            raise kv.Unavailable(policy.name) from error
        return Decision(policy, remaining > 0, remaining, reset_at)
