"""Counting requests: upstash-ratelimit's three algorithms (fixed window, sliding window, token
bucket) in a shared store, and the same algorithms in this process's memory.

In the shared store each decision is one atomic server-side script, one round trip: the
library's own scripts, sent by its own client to Upstash over REST, and by redis-py to Redis
over TCP (`_RedisCommands`). Both lay out their keys as the library does, so processes on
either path share one count.
"""

import asyncio
import math
import time
from collections.abc import Iterable
from typing import Protocol, cast

import redis.asyncio
from redis.commands.core import AsyncScript
from upstash_ratelimit.asyncio import FixedWindow, Ratelimit, SlidingWindow, TokenBucket
from upstash_ratelimit.limiter import Limiter as UpstashLimiter
from upstash_redis.asyncio import Redis as UpstashRedis

from conduit import kv
from conduit.config import Algorithm
from conduit.ratelimit.policies import Decision, Policy


class Limiter(Protocol):
    async def limit(self, policy: Policy, identifier: str) -> Decision:
        """Count one request of `identifier` and say whether it is allowed."""

    async def peek(self, policy: Policy, identifier: str) -> Decision:
        """Whether a request of `identifier` would be allowed, counting nothing."""


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
            self._errors: tuple[type[Exception], ...] = kv.REDIS_ERRORS
        else:
            client = store.client
            self._errors = kv.UPSTASH_ERRORS
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


def _now_ms() -> int:
    return int(time.time() * 1000)


# How often expired counts are dropped from memory.
_SWEEP_INTERVAL_MS = 60_000


class MemoryLimiter:
    """upstash-ratelimit's algorithms, step for step, on this process's memory: the embedded
    default, and the sign-in policies' fallback while the shared store is down."""

    def __init__(self) -> None:
        # key -> (count, expires at); key -> (refilled at, tokens, expires at); all in ms.
        self._counts: dict[str, tuple[int, int]] = {}
        self._buckets: dict[str, tuple[int, int, int]] = {}
        self._sweep_at = 0

    async def limit(self, policy: Policy, identifier: str) -> Decision:
        now = _now_ms()
        self._sweep(now)
        key = f"{policy.name}:{identifier}"
        match policy.algorithm:
            case Algorithm.FIXED_WINDOW:
                return self._fixed_window(policy, key, now)
            case Algorithm.SLIDING_WINDOW:
                return self._sliding_window(policy, key, now)
            case Algorithm.TOKEN_BUCKET:
                return self._token_bucket(policy, key, now)

    async def peek(self, policy: Policy, identifier: str) -> Decision:
        now = _now_ms()
        key = f"{policy.name}:{identifier}"
        window = policy.window_ms
        current = now // window
        reset_at = (current + 1) * window
        match policy.algorithm:
            case Algorithm.FIXED_WINDOW:
                used = self._count(f"{key}:{current}", now)
            case Algorithm.SLIDING_WINDOW:
                used = self._previous_weighted(policy, key, now) + self._count(
                    f"{key}:{current}", now
                )
            case Algorithm.TOKEN_BUCKET:
                refilled_at, tokens = self._bucket(policy, key, now)
                used = policy.quota - tokens
                reset_at = refilled_at + policy.refill_interval_ms if tokens < policy.quota else now
        remaining = max(0, policy.quota - used)
        return Decision(policy, remaining > 0, remaining, reset_at / 1000)

    def _count(self, key: str, now: int) -> int:
        entry = self._counts.get(key)
        return entry[0] if entry is not None and entry[1] > now else 0

    def _increment(self, key: str, now: int, ttl_ms: int) -> int:
        """INCRBY, and PEXPIRE on the key's first increment."""
        entry = self._counts.get(key)
        if entry is None or entry[1] <= now:
            self._counts[key] = (1, now + ttl_ms)
            return 1
        count = entry[0] + 1
        self._counts[key] = (count, entry[1])
        return count

    def _previous_weighted(self, policy: Policy, key: str, now: int) -> int:
        """The previous window's count, weighted by how much of it the sliding window still
        covers."""
        window = policy.window_ms
        previous = self._count(f"{key}:{now // window - 1}", now)
        return math.floor((1 - (now % window) / window) * previous)

    def _fixed_window(self, policy: Policy, key: str, now: int) -> Decision:
        current = now // policy.window_ms
        count = self._increment(f"{key}:{current}", now, policy.window_ms)
        reset_at = (current + 1) * policy.window_ms / 1000
        return Decision(policy, count <= policy.quota, max(0, policy.quota - count), reset_at)

    def _sliding_window(self, policy: Policy, key: str, now: int) -> Decision:
        window = policy.window_ms
        current = now // window
        reset_at = (current + 1) * window / 1000
        previous = self._previous_weighted(policy, key, now)
        if previous + self._count(f"{key}:{current}", now) >= policy.quota:
            return Decision(policy, False, 0, reset_at)
        count = self._increment(f"{key}:{current}", now, window * 2 + 1000)
        return Decision(policy, True, policy.quota - (count + previous), reset_at)

    def _bucket(self, policy: Policy, key: str, now: int) -> tuple[int, int]:
        """The bucket's last refill and its tokens, refilled up to now."""
        entry = self._buckets.get(key)
        if entry is None or entry[2] <= now:
            return now, policy.quota
        refilled_at, tokens, _ = entry
        interval = policy.refill_interval_ms
        if now >= refilled_at + interval:
            refills = (now - refilled_at) // interval
            tokens = min(policy.quota, tokens + refills)
            refilled_at += refills * interval
        return refilled_at, tokens

    def _token_bucket(self, policy: Policy, key: str, now: int) -> Decision:
        refilled_at, tokens = self._bucket(policy, key, now)
        interval = policy.refill_interval_ms
        reset_at = (refilled_at + interval) / 1000
        if tokens < 1:
            return Decision(policy, False, 0, reset_at)
        remaining = tokens - 1
        expires_at = now + (policy.quota - remaining) * interval
        self._buckets[key] = (refilled_at, remaining, expires_at)
        return Decision(policy, True, remaining, reset_at)

    def _sweep(self, now: int) -> None:
        if now < self._sweep_at:
            return
        self._sweep_at = now + _SWEEP_INTERVAL_MS
        self._counts = {key: entry for key, entry in self._counts.items() if entry[1] > now}
        self._buckets = {key: entry for key, entry in self._buckets.items() if entry[2] > now}
