"""The three algorithms behave alike on every store: the same decisions for the same requests,
whether counted in memory, in Redis by script, or through Upstash's REST API."""

import asyncio
import time

import pytest

from conduit import kv
from conduit.config import Algorithm
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Decision, Policies, Policy

pytestmark = pytest.mark.anyio


def _limiter(store: kv.Store, prefix: str, *policies: Policy) -> RateLimiter:
    """A limiter counting `policies` (the first one in every role it is not given for)."""
    first = policies[0]
    named = {policy.name: policy for policy in policies}
    return RateLimiter(
        Policies(
            anonymous=named.get("anonymous", first),
            reads=named.get("reads", first),
            writes=named.get("writes", first),
            sign_in=named.get("sign-in", first),
            failed_sign_ins=named.get("failed-sign-ins", first),
            failed_sign_ins_per_account=named.get("failed-sign-ins-per-account", first),
            password_resets=named.get("password-resets", first),
            cache_fills=named.get("cache-fills", first),
        ),
        store,
        prefix=prefix,
    )


async def _burst(limiter: RateLimiter, policy: Policy, identifier: str, n: int) -> list[Decision]:
    decisions = []
    for _ in range(n):
        decision, _ = await limiter.limit(policy, identifier)
        assert decision is not None
        decisions.append(decision)
    return decisions


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_a_burst_gets_the_quota_and_no_more(
    store: kv.Store, key_prefix: str, algorithm: Algorithm
) -> None:
    policy = Policy("anonymous", quota=5, window_seconds=3600, algorithm=algorithm)
    limiter = _limiter(store, key_prefix, policy)

    decisions = await _burst(limiter, policy, "203.0.113.7", 8)

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0, 0]
    now = time.time()
    assert all(0 < d.reset_in(now) <= 3600 for d in decisions)


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_identifiers_and_policies_count_apart(
    store: kv.Store, key_prefix: str, algorithm: Algorithm
) -> None:
    reads = Policy("reads", quota=2, window_seconds=3600, algorithm=algorithm)
    writes = Policy("writes", quota=2, window_seconds=3600, algorithm=algorithm)
    limiter = _limiter(store, key_prefix, reads, writes)
    await _burst(limiter, reads, "user:1", 2)

    assert not (await _burst(limiter, reads, "user:1", 1))[0].allowed
    assert (await _burst(limiter, reads, "user:2", 1))[0].allowed
    assert (await _burst(limiter, writes, "user:1", 1))[0].allowed


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_a_reset_gives_the_identifier_its_whole_quota_back(
    store: kv.Store, key_prefix: str, algorithm: Algorithm
) -> None:
    policy = Policy("failed-sign-ins", quota=2, window_seconds=3600, algorithm=algorithm)
    limiter = _limiter(store, key_prefix, policy)
    await _burst(limiter, policy, "login:1", 3)
    await _burst(limiter, policy, "login:2", 2)

    await limiter.reset(policy, "login:1")

    assert [d.allowed for d in await _burst(limiter, policy, "login:1", 3)] == [True, True, False]
    assert not (await _burst(limiter, policy, "login:2", 1))[0].allowed


@pytest.mark.parametrize("algorithm", list(Algorithm))
async def test_requests_are_allowed_again_once_the_reset_time_has_passed(
    store: kv.Store, key_prefix: str, algorithm: Algorithm
) -> None:
    window = 2
    policy = Policy("anonymous", quota=2, window_seconds=window, algorithm=algorithm)
    limiter = _limiter(store, key_prefix, policy)
    # The whole burst in one window: across a boundary the sliding window would let its last
    # request through, weighing the window before by less than all of it.
    await asyncio.sleep(window - time.time() % window + 0.05)
    *_, refused = await _burst(limiter, policy, "203.0.113.7", 3)
    assert not refused.allowed

    await asyncio.sleep(refused.reset_at - time.time() + 0.05)

    assert (await _burst(limiter, policy, "203.0.113.7", 1))[0].allowed


@pytest.mark.parametrize(
    ("algorithm", "allowed_at_once"),
    # A fixed window forgets at its boundary: twice the quota can pass in a moment. The sliding
    # window still weighs the window just ended: in its first half, by more than one request
    # of two, so that only one passes.
    [(Algorithm.FIXED_WINDOW, 2), (Algorithm.SLIDING_WINDOW, 1)],
)
async def test_at_a_window_boundary_only_the_fixed_window_forgets(
    store: kv.Store, key_prefix: str, algorithm: Algorithm, allowed_at_once: int
) -> None:
    # A second for each burst, which takes milliseconds on an idle machine.
    window = 2
    policy = Policy("anonymous", quota=2, window_seconds=window, algorithm=algorithm)
    limiter = _limiter(store, key_prefix, policy)
    # Start at the window's beginning, so that the burst ends well before its end.
    await asyncio.sleep(window - time.time() % window + 0.05)
    *_, refused = await _burst(limiter, policy, "203.0.113.7", 3)
    assert not refused.allowed

    await asyncio.sleep(refused.reset_at - time.time() + 0.05)
    after = await _burst(limiter, policy, "203.0.113.7", 3)

    assert sum(d.allowed for d in after) == allowed_at_once
