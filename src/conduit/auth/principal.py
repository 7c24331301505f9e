import uuid
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


ALL_SCOPES = frozenset(Scope)
# The methods the `read` scope allows; `write` allows the rest.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Account(BaseModel):
    """The caller's own user record, as authentication reads it (`conduit.auth.reads`)."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    email: str
    bio: str | None
    image: str | None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and how: with an access token bound to a session, or with an API key."""

    user: Account
    scopes: frozenset[Scope]
    session_id: uuid.UUID | None = None
    token: str | None = None
    api_key_id: int | None = None

    @property
    def rate_limit_key(self) -> str:
        """Requests with an API key count against the key, the others against the user."""
        return f"user:{self.user.id}" if self.api_key_id is None else f"key:{self.api_key_id}"


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A caller with a sign-in session, as opposed to an API key."""

    user: Account
    session_id: uuid.UUID
