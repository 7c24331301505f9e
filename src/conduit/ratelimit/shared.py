"""upstash-ratelimit's three algorithms (fixed window, sliding window, token bucket) in a shared
store. Each decision is one atomic server-side script, one round trip, and the keys are laid out
as the library lays them out, so processes on Redis and on Upstash share one count.

The library's algorithms are generators: each yields the one command it needs and takes its
reply (`AbstractLimiter._limit`; pinned `<1.3`, and every algorithm runs through
`tests/ratelimit`). Conduit runs that command itself, so that a decision
can share its round trip with the caller's other commands (a cached read's lookup,
`conduit.cache`): over TCP as a redis-py pipeline, over REST as an Upstash `/pipeline`.

Imported only when a shared store is configured: the clients cost a process ~16 MiB and a
third of a second at start-up.
"""

from collections.abc import Generator, Iterable, Sequence
from hashlib import sha1
from typing import Any

from upstash_ratelimit.asyncio import FixedWindow, SlidingWindow, TokenBucket
from upstash_ratelimit.limiter import AbstractLimiter
from upstash_ratelimit.utils import now_ms

from conduit import kv
from conduit.config import Algorithm
from conduit.ratelimit.policies import Decision, Policy

_Steps = Generator[Any, Any, None]


def _algorithm(policy: Policy) -> AbstractLimiter:
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


class _Script:
    """One of the library's scripts, as each store runs it: Redis by its hash (EVALSHA),
    without its first line, `#!lua flags=allow-key-locking`, a hint to Upstash's engine that
    Redis refuses; Upstash as the library sends it (EVAL)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.body = source.partition("\n")[2] if source.startswith("#!") else source
        self.sha = sha1(self.body.encode(), usedforsecurity=False).hexdigest()


class SharedLimiter:
    """The policies counted by upstash-ratelimit in Redis or Upstash; a store that fails or
    is slower than its timeout raises `kv.Unavailable`."""

    def __init__(self, store: kv.Redis | kv.Upstash, policies: Iterable[Policy], prefix: str):
        self._store = store
        self._algorithms = {policy.name: _algorithm(policy) for policy in policies}
        # The library's `Ratelimit(prefix=...)` keys, `<prefix>:<identifier>`.
        self._prefixes = {
            policy.name: f"{prefix}:{policy.name}:{policy.algorithm}" for policy in policies
        }
        self._scripts: dict[str, _Script] = {}

    async def limit(
        self, policy: Policy, identifier: str, alongside: Sequence[kv.Command] = ()
    ) -> tuple[Decision, list[object]]:
        """Count one request and decide; the `alongside` commands go in the same round trip,
        and their replies come back with the decision."""
        key = f"{self._prefixes[policy.name]}:{identifier}"
        response, replies = await self._step(self._algorithms[policy.name]._limit(key), alongside)
        return Decision(policy, response.allowed, response.remaining, response.reset), replies

    async def reset(self, policy: Policy, identifier: str) -> None:
        """Forget what `identifier` has spent: delete the keys the algorithm counts it in, the
        current and the previous window's for the windows, the bucket for a token bucket."""
        key = f"{self._prefixes[policy.name]}:{identifier}"
        if policy.algorithm is Algorithm.TOKEN_BUCKET:
            await self._store.run([("DEL", key)])
            return
        current = now_ms() // policy.window_ms
        await self._store.run([("DEL", f"{key}:{current}", f"{key}:{current - 1}")])

    async def _step(
        self, steps: _Steps, alongside: Sequence[kv.Command] = ()
    ) -> tuple[Any, list[object]]:
        """Run the command an algorithm asks for (if any) and give it the reply."""
        name, arguments = next(steps)
        if not name:
            return next(steps), []
        if name != "eval":
            replies = await self._store.run([(name.upper(), *arguments), *alongside])
            return steps.send(replies[0]), replies[1:]
        source, keys, values = arguments
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = _Script(source)
        replies = await self._evaluate(script, [len(keys), *keys, *values], alongside)
        return steps.send(replies[0]), replies[1:]

    async def _evaluate(
        self, script: _Script, arguments: list[Any], alongside: Sequence[kv.Command]
    ) -> list[object]:
        if isinstance(self._store, kv.Upstash):
            return await self._store.run([("EVAL", script.source, *arguments), *alongside])
        try:
            return await self._store.run([("EVALSHA", script.sha, *arguments), *alongside])
        except kv.ScriptMissing:
            # A Redis that restarted has forgotten it: loaded and run in the same round trip.
            replies = await self._store.run(
                [("SCRIPT", "LOAD", script.body), ("EVALSHA", script.sha, *arguments), *alongside]
            )
            return replies[1:]
