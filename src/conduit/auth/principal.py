import uuid
from dataclasses import dataclass
from enum import StrEnum

from conduit.auth.models import User


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and how: with an access token bound to a session, or with an API key."""

    user: User
    scopes: frozenset[Scope]
    session_id: uuid.UUID | None = None
    token: str | None = None

    @property
    def via_api_key(self) -> bool:
        return self.session_id is None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A caller with a sign-in session, as opposed to an API key."""

    user: User
    session_id: uuid.UUID
