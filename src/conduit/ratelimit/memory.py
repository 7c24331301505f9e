"""upstash-ratelimit's algorithms, step for step, in this process's memory: the embedded
default, and the sign-in policies' fallback while the shared store is down."""

import math
import time

from conduit.config import Algorithm
from conduit.ratelimit.policies import Decision, Policy


def _now_ms() -> int:
    return int(time.time() * 1000)


# How often expired counts are dropped from memory.
_SWEEP_INTERVAL_MS = 60_000


class MemoryLimiter:
    """The counts of one process, kept as upstash-ratelimit keeps them in Redis."""

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

    async def reset(self, policy: Policy, identifier: str) -> None:
        """Forget what `identifier` has spent: the entries `limit` counts it in."""
        key = f"{policy.name}:{identifier}"
        current = _now_ms() // policy.window_ms
        self._counts.pop(f"{key}:{current}", None)
        self._counts.pop(f"{key}:{current - 1}", None)
        self._buckets.pop(key, None)

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
