import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from conduit import kv
from conduit.auth.tokens import digest
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
                    policies.failed_sign_ins_per_account,
                    policies.password_resets,
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
        return await self._locally(policy, identifier), None

    async def allows(self, policy: Policy, identifier: str) -> bool:
        """Count one against a quota that is never a refusal (what is over it is skipped, not
        answered 429): whether it is within the quota."""
        decision, _ = await self.limit(policy, identifier)
        return decision is None or decision.allowed

    async def reset(self, policy: Policy, identifier: str) -> None:
        """Forget what `identifier` has spent of `policy`, where `limit` counts it."""
        if self._shared is not None and self._outage.available():
            try:
                await self._shared.reset(policy, identifier)
            except kv.Unavailable as error:
                self._outage.failed(error)
            else:
                self._outage.recovered()
                return
        if self._shared is None or policy.falls_back or self._outage.full:
            await self._local.reset(policy, identifier)

    async def _locally(self, policy: Policy, identifier: str) -> Decision | None:
        """In this process: every policy without a shared store or while it is full; during
        an outage, the policies that fall back."""
        if self._shared is not None and not policy.falls_back and not self._outage.full:
            return None
        return await self._local.limit(policy, identifier)


class SignInAttempts:
    """Sign-in attempts from one client address, counted by the login as sent (an email
    address or a username, whatever the case), never by the account it names: a refusal is the
    same whether or not the login exists.

    Each attempt is reserved before its password is checked, atomically, so that concurrent
    attempts check no more passwords than the quota: one of the login's `failed_sign_ins` from
    this address, then one of its `failed_sign_ins_per_account` from every address together,
    the ceiling on guessing spread over many addresses. A successful sign-in gives this address
    its attempts back, so that the lock-out falls on the address guessing, not on the owner
    signing in from elsewhere.
    """

    def __init__(self, limiter: RateLimiter | None, *, address: str) -> None:
        self._limiter = limiter
        self._address = address

    async def reserve(self, login: str) -> None:
        """Count an attempt at `login`, or raise `TooManyRequests` once either quota is spent."""
        if self._limiter is None:
            return
        policies = self._limiter.policies
        # Hashed: the store holds no email address in clear.
        account = digest(login.lower())
        for policy, identifier in (
            (policies.failed_sign_ins, f"{account}:{self._address}"),
            (policies.failed_sign_ins_per_account, account),
        ):
            decision, _ = await self._limiter.limit(policy, identifier)
            if decision is not None and not decision.allowed:
                raise TooManyRequests(decision.retry_after(time.time()))

    async def succeeded(self, login: str) -> None:
        if self._limiter is not None:
            await self._limiter.reset(
                self._limiter.policies.failed_sign_ins, f"{digest(login.lower())}:{self._address}"
            )
