"""What the layers of one request tell each other, as one typed object: the edge
(`conduit.edge`) makes it, authentication and rate limiting fill it in, and the edge reads it
back for the response's headers and the access line."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.types import Scope

if TYPE_CHECKING:
    from conduit.ratelimit.policies import Decision

_KEY = "conduit.request"


@dataclass(slots=True)
class RequestState:
    # The route's template, for a request the edge answered without the framework's routing.
    route: str | None = None
    # The user the request authenticated as.
    user_id: int | None = None
    # The primary's WAL position the request's reads must see: its caller's last write's
    # (`conduit.database.replicas`).
    reads_after: int = 0
    # The rate-limit decisions that counted the request, in the order they were made.
    decisions: "list[Decision]" = field(default_factory=list)
    # How to count a caller that was let in but left for its route to count
    # (`conduit.auth.dependencies.Caller`), until it is: a request that fails validation
    # before its route runs is counted by the validation error's handler.
    uncounted: Callable[[], Awaitable[object]] | None = None


def begin(scope: Scope) -> RequestState:
    state = scope[_KEY] = RequestState()
    return state


def of(scope: Scope) -> RequestState:
    state: RequestState = scope[_KEY]
    return state
