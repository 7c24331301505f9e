import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conduit import kv
from conduit.errors import TooManyRequests
from conduit.ratelimit.memory import MemoryLimiter
from conduit.ratelimit.policies import Decision, Policies, Policy

if TYPE_CHECKING:
    from conduit.ratelimit.shared import SharedLimiter


class RateLimiter:
    """The policies, counted in the process's store.

    While a shared store is down, a policy that does not fall back lets requests through (the
    API stays up), and one that does counts in this process instead: an outage must not open
    sign-in to brute force. While it refuses writes for lack of memory, every policy counts in
    this process: a client that could fill it (with cache entries, say) must not thereby switch
    rate limiting off. The store is tried again a moment after each failure, and counts there
    again as soon as it answers.
    """

    def __init__(self, policies: Policies, store: kv.Store, *, prefix: str) -> None:
        self.policies = policies
        self._outage = store.outage
        self._local = MemoryLimiter()
        self._shared: SharedLimiter | None = None
        if not isinstance(store, kv.Memory):
            from conduit.ratelimit import shared

            self._shared = shared.SharedLimiter(
                store,
                (
                    policies.anonymous,
                    policies.reads,
                    policies.writes,
                    policies.sign_in,
                    policies.failed_sign_ins,
                    policies.cache_fills,
                ),
                prefix=f"{prefix}:ratelimit",
            )

    async def limit(
        self, policy: Policy, identifier: str, alongside: Sequence[kv.Command] = ()
    ) -> tuple[Decision | None, list[object] | None]:
        """Count a request: the decision, None when it could not be counted and is let
        through; and, in a shared store, the replies to `alongside`, sent in the same round
        trip (None when they were not)."""
        if self._shared is not None and self._outage.available():
            try:
                decision, replies = await self._shared.limit(policy, identifier, alongside)
            except kv.Unavailable as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return decision, replies
        return await self._locally(policy, identifier, count=True), None

    async def peek(self, policy: Policy, identifier: str) -> Decision | None:
        if self._shared is not None and self._outage.available():
            try:
                decision = await self._shared.peek(policy, identifier)
            except kv.Unavailable as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return decision
        return await self._locally(policy, identifier, count=False)

    async def _locally(self, policy: Policy, identifier: str, *, count: bool) -> Decision | None:
        """In this process: every policy without a shared store or while it is full; during
        an outage, the policies that fall back."""
        if self._shared is not None and not policy.falls_back and not self._outage.full:
            return None
        if count:
            return await self._local.limit(policy, identifier)
        return await self._local.peek(policy, identifier)


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
