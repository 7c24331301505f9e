"""Access tokens: JWTs signed with HS256 (RFC 8725, RFC 9068).

Every token names the key that signed it (`kid`), so that old keys can keep verifying while a new
one signs: rotation logs nobody out. The header says what the token is (`typ: at+jwt`), and the
claims say who issued it for whom (`iss`, `aud`), for which user and session (`sub`, `sid`), and
when it is valid (`iat`, `nbf`, `exp`).
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import jwt

from conduit.config import AuthSettings
from conduit.errors import Unauthorized

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - the JWT `typ` of RFC 9068
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "iat", "nbf", "exp"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: uuid.UUID


def digest(secret: str) -> str:
    """How opaque secrets (refresh tokens, API keys) are stored and looked up: SHA-256. They
    carry 256 random bits, so a slow hash would add nothing, and the lookup must be an index hit."""
    return hashlib.sha256(secret.encode()).hexdigest()


@cache
def key_id(secret: str) -> str:
    """A public name for a key that reveals nothing about it."""
    return digest(secret)[:16]


def _verification_keys(settings: AuthSettings) -> dict[str, str]:
    secrets = [settings.secret_key, *settings.previous_secret_keys]
    return {key_id(secret.get_secret_value()): secret.get_secret_value() for secret in secrets}


def create_access_token(
    settings: AuthSettings, *, user_id: int, session_id: uuid.UUID, ttl_seconds: int
) -> str:
    now = datetime.now(UTC)
    secret = settings.secret_key.get_secret_value()
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    headers = {"kid": key_id(secret), "typ": ACCESS_TOKEN_TYPE}
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers=headers)


def verify_access_token(settings: AuthSettings, token: str) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
        secret = _verification_keys(settings).get(header.get("kid", ""))
        if secret is None or header.get("typ") != ACCESS_TOKEN_TYPE:
            raise Unauthorized("token")
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=timedelta(seconds=settings.leeway_seconds),
            options={"require": _REQUIRED_CLAIMS},
        )
        return AccessClaims(user_id=int(claims["sub"]), session_id=uuid.UUID(str(claims["sid"])))
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise Unauthorized("token") from exc
