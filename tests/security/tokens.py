"""Forged and altered access tokens, to check that each one is refused."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from conduit.auth.tokens import ACCESS_TOKEN_TYPE, ALGORITHM, key_id
from tests.conftest import TEST_SECRET


def claims(*, user_id: int, session_id: str, **overrides: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "iss": "conduit",
        "aud": "conduit-api",
        "sub": str(user_id),
        "sid": session_id,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
    } | overrides


def sign(
    payload: dict[str, object],
    *,
    secret: str = TEST_SECRET,
    **header: object,
) -> str:
    headers = {"kid": key_id(secret), "typ": ACCESS_TOKEN_TYPE} | header
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers=headers)


def session_of(token: str) -> tuple[int, str]:
    """The user and session a valid token names."""
    payload = jwt.decode(token, options={"verify_signature": False})
    return int(payload["sub"]), str(payload["sid"])


def unsigned(token: str) -> str:
    """The token's claims under `alg: none`, with the signature dropped."""
    header = {"alg": "none", "typ": ACCESS_TOKEN_TYPE, "kid": key_id(TEST_SECRET)}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{encoded}.{token.split('.')[1]}."


def tampered(token: str) -> str:
    """The token with its `sub` changed and the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(int(claims["sub"]) + 1)
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def random_session() -> str:
    return str(uuid.uuid4())
