import time
from typing import Protocol

from conduit import kv
from conduit.errors import TooManyRequests
from conduit.ratelimit.memory import MemoryLimiter
from conduit.ratelimit.policies import Decision, Policies, Policy


class Limiter(Protocol):
    async def limit(self, policy: Policy, identifier: str) -> Decision:
        """Count one request of `identifier` and say whether it is allowed."""

    async def peek(self, policy: Policy, identifier: str) -> Decision:
        """Whether a request of `identifier` would be allowed, counting nothing."""


class RateLimiter:
    """The policies, counted in the process's store.

    While a shared store is down, a policy that does not fall back lets requests through (the
    API stays up), and one that does counts in this process instead: an outage must not open
    sign-in to brute force. The store is tried again a moment after each failure, and counts
    there again as soon as it answers.
    """

    def __init__(self, policies: Policies, store: kv.Store, *, prefix: str) -> None:
        self.policies = policies
        self._outage = store.outage
        self._local = MemoryLimiter()
        self._store: Limiter
        if isinstance(store, kv.Memory):
            self._store = self._local
        else:
            from conduit.ratelimit.shared import SharedLimiter

            self._store = SharedLimiter(
                store,
                (
                    policies.anonymous,
                    policies.reads,
                    policies.writes,
                    policies.sign_in,
                    policies.failed_sign_ins,
                ),
                prefix=f"{prefix}:ratelimit",
            )

    async def limit(self, policy: Policy, identifier: str) -> Decision | None:
        """Count a request; None when it could not be counted and is let through."""
        return await self._decide(policy, identifier, count=True)

    async def peek(self, policy: Policy, identifier: str) -> Decision | None:
        return await self._decide(policy, identifier, count=False)

    async def _decide(self, policy: Policy, identifier: str, *, count: bool) -> Decision | None:
        if self._outage.available():
            try:
                decision = await _ask(self._store, policy, identifier, count=count)
            except kv.Unavailable as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return decision
        if policy.falls_back:
            return await _ask(self._local, policy, identifier, count=count)
        return None


async def _ask(limiter: Limiter, policy: Policy, identifier: str, *, count: bool) -> Decision:
    return await (limiter.limit if count else limiter.peek)(policy, identifier)


class SignInAttempts:
    """Failed sign-ins per account. Once the policy's quota is spent, sign-in to the account is
    refused whatever the password, until the window moves on: a lock-out that always ends."""

    def __init__(self, limiter: RateLimiter | None) -> None:
        self._limiter = limiter

    async def ensure_allowed(self, account: str) -> None:
        if self._limiter is None:
            return
        decision = await self._limiter.peek(self._limiter.policies.failed_sign_ins, account)
        if decision is not None and not decision.allowed:
            raise TooManyRequests(decision.retry_after(time.time()))

    async def failed(self, account: str) -> None:
        if self._limiter is not None:
            await self._limiter.limit(self._limiter.policies.failed_sign_ins, account)
