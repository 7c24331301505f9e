"""Rate limits applied to requests.

Every `/api` request is counted once against its caller, by `limit_caller`: by the user or API
key it authenticated as (`reads` or `writes`), else by the client's address (`anonymous`). When
is the route's to say: the authentication dependency counts as soon as it knows the caller; a
route that does not authenticate counts through `limit_anonymous`, or `limit_sign_in` for the
routes that hand out credentials (the `sign_in` policy first); a cached read defers the count
(`conduit.auth.dependencies.Caller`) to make it in the round trip of its cache lookup, and if
the request fails validation before that, the validation error's handler makes it. A password
change counts against the sign-in policy too (`limit_password_change`), sign-in attempts per
login (`SignInAttempts`) and reset emails per address (`may_send_reset`).

Every decision that counts a request is recorded in the request's state by `_count`, the one
function that makes them: the edge (`conduit.edge`) sends them as IETF `RateLimit-Policy` and
`RateLimit` headers on the response, and names their policies in the access line
(`rate_limits`); a refusal is a 429 with `Retry-After`.
"""

import time
from collections.abc import Sequence
from functools import cache, lru_cache
from ipaddress import IPv4Address, IPv6Network, ip_address
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import Counter

from conduit import clients, kv, metrics, request_state
from conduit.auth.principal import SAFE_METHODS
from conduit.auth.tokens import digest
from conduit.errors import TooManyRequests
from conduit.ratelimit.limiter import RateLimiter, SignInAttempts
from conduit.ratelimit.policies import Decision, Policy


@lru_cache(maxsize=4096)
def address_partition(host: str) -> str:
    """One IPv4 address, or one IPv6 /64: the block a single client controls."""
    try:
        address = ip_address(host)
    except ValueError:
        return host
    if isinstance(address, IPv4Address):
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(IPv6Network((address, 64), strict=False))


def client_partition(request: Request) -> str:
    """The client's address as the trusted-proxy handling computed it, by partition."""
    return address_partition(request.client.host) if request.client else "unknown"


@cache
def _decisions(policy: str, allowed: bool) -> Counter:
    return metrics.RATE_LIMIT_DECISIONS.labels(policy, "allowed" if allowed else "refused")


async def _count(
    request: Request,
    limiter: RateLimiter,
    policy: Policy,
    identifier: str,
    alongside: Sequence[kv.Command] = (),
) -> list[object] | None:
    decision, replies = await limiter.limit(policy, identifier, alongside)
    if decision is None:
        return replies
    _decisions(policy.name, decision.allowed).inc()
    request_state.of(request.scope).decisions.append(decision)
    if not decision.allowed:
        raise TooManyRequests(decision.retry_after(time.time()))
    return replies


async def limit_caller(
    request: Request, identity: str | None, alongside: Sequence[kv.Command] = ()
) -> list[object] | None:
    """Count the request against its caller: an authenticated `identity`'s reads or writes,
    or, with none, the client's address. The `alongside` commands share the decision's round
    trip when it is made in a shared store; their replies, or None when they were not sent."""
    limiter = clients.of(request).rate_limiter
    if limiter is None:
        return None
    policies = limiter.policies
    if identity is None:
        policy, identifier = policies.anonymous, client_partition(request)
    elif request.method in SAFE_METHODS:
        policy, identifier = policies.reads, identity
    else:
        policy, identifier = policies.writes, identity
    return await _count(request, limiter, policy, identifier, alongside)


async def may_fill_cache(request: Request, identity: str | None) -> bool:
    """Whether the caller's cache fills (`conduit.cache`) are not spent, counting this one:
    by an authenticated `identity`, or by the client's address. Neither refused nor in the
    rate-limit headers: a caller whose fills are spent is answered, its document not stored."""
    limiter = clients.of(request).rate_limiter
    if limiter is None:
        return True
    identifier = identity if identity is not None else client_partition(request)
    return await limiter.allows(limiter.policies.cache_fills, identifier)


async def may_send_reset(request: Request, email: str) -> bool:
    """Whether a password-reset email may go to `email`, counting this one: per address it goes
    to, whoever asks. Never refused: over the quota, no email is sent and nothing says so."""
    limiter = clients.of(request).rate_limiter
    if limiter is None:
        return True
    return await limiter.allows(limiter.policies.password_resets, digest(email))


async def limit_anonymous(request: Request) -> None:
    """For routes that do not authenticate: counted by the client's address."""
    await limit_caller(request, None)


async def limit_sign_in(request: Request) -> None:
    """For the routes that hand out credentials: the sign-in policy, then the anonymous one."""
    limiter = clients.of(request).rate_limiter
    if limiter is None:
        return
    address = client_partition(request)
    await _count(request, limiter, limiter.policies.sign_in, address)
    await _count(request, limiter, limiter.policies.anonymous, address)


async def limit_password_change(request: Request, *, user_id: int) -> None:
    """A new password costs a hash, as a sign-in does: it counts against the sign-in policy by
    the client's address and by the account, so that neither many accounts nor many addresses
    turn the server's hashing against the users signing in."""
    limiter = clients.of(request).rate_limiter
    if limiter is None:
        return
    await _count(request, limiter, limiter.policies.sign_in, client_partition(request))
    await _count(request, limiter, limiter.policies.sign_in, f"user:{user_id}")


async def sign_in_attempts(request: Request) -> SignInAttempts:
    return SignInAttempts(clients.of(request).rate_limiter, address=client_partition(request))


AnonymousLimit = Depends(limit_anonymous)
SignInLimit = Depends(limit_sign_in)
Attempts = Annotated[SignInAttempts, Depends(sign_in_attempts)]


def rate_limit_headers(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes]]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured
    fields) for the decisions that counted a request, on its response, errors included."""
    now = time.time()
    policies = ", ".join(decision.policy.header for decision in decisions)
    states = ", ".join(decision.header(now) for decision in decisions)
    return [(b"ratelimit-policy", policies.encode()), (b"ratelimit", states.encode())]
