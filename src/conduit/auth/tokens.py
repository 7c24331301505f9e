"""The RealWorld access token: a JWT signed with HS256, naming the user in `sub`."""

from datetime import UTC, datetime, timedelta

import jwt

from conduit.errors import Unauthorized

ALGORITHM = "HS256"


def create_token(user_id: int, *, secret: str, ttl_seconds: int) -> str:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def user_id_from_token(token: str, *, secret: str) -> int:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
            leeway=timedelta(seconds=30),
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("token") from exc
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject.isdigit():
        raise Unauthorized("token")
    return int(subject)
