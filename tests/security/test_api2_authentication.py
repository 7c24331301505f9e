"""API2:2023 Broken Authentication: every altered, stale, misdirected or revoked credential is
refused, and failures give nothing away."""

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.auth.models import RefreshToken
from conduit.auth.sessions import REPLAY_GRACE
from conduit.database import utcnow
from tests.conftest import PREVIOUS_TEST_SECRET
from tests.factories import PASSWORD, auth, bearer, oauth_tokens, register
from tests.security import tokens

pytestmark = pytest.mark.anyio


async def _invalid(client: AsyncClient, token: str) -> None:
    response = await client.get("/api/user", headers=auth(token))
    assert response.status_code == 401, response.text
    assert response.json() == {"errors": {"token": ["is invalid"]}}


async def test_tampered_token(client: AsyncClient) -> None:
    await register(client, "alice")
    token = await register(client, "bob")

    await _invalid(client, tokens.tampered(token))


async def test_alg_none(client: AsyncClient) -> None:
    token = await register(client, "alice")

    await _invalid(client, tokens.unsigned(token))


async def test_expired_token(client: AsyncClient) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))
    past = datetime.now(UTC) - timedelta(hours=1)

    await _invalid(
        client,
        tokens.sign(
            tokens.claims(user_id=user_id, session_id=session_id, iat=past, nbf=past, exp=past)
        ),
    )


async def test_token_not_yet_valid(client: AsyncClient) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))
    future = datetime.now(UTC) + timedelta(hours=1)

    await _invalid(
        client, tokens.sign(tokens.claims(user_id=user_id, session_id=session_id, nbf=future))
    )


@pytest.mark.parametrize(
    "override", [{"aud": "another-api"}, {"iss": "someone-else"}, {"sid": "not-a-uuid"}]
)
async def test_wrong_audience_issuer_or_session(
    client: AsyncClient, override: dict[str, object]
) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))

    await _invalid(
        client, tokens.sign(tokens.claims(user_id=user_id, session_id=session_id, **override))
    )


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "sid", "iat", "nbf", "exp"])
async def test_missing_claim(client: AsyncClient, claim: str) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))
    payload = tokens.claims(user_id=user_id, session_id=session_id)
    del payload[claim]

    await _invalid(client, tokens.sign(payload))


@pytest.mark.parametrize("typ", ["JWT", "refresh+jwt", None])
async def test_wrong_token_type(client: AsyncClient, typ: str | None) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))

    await _invalid(
        client, tokens.sign(tokens.claims(user_id=user_id, session_id=session_id), typ=typ)
    )


async def test_refresh_token_is_not_an_access_token(client: AsyncClient) -> None:
    await register(client, "alice")
    pair = await oauth_tokens(client, "alice")

    response = await client.get("/api/user", headers=bearer(pair["refresh_token"]))

    assert response.status_code == 401


async def test_access_token_is_not_a_refresh_token(client: AsyncClient) -> None:
    await register(client, "alice")
    pair = await oauth_tokens(client, "alice")

    response = await client.post("/api/auth/refresh", json={"refresh_token": pair["access_token"]})

    assert response.status_code == 401
    assert response.json() == {"errors": {"refresh_token": ["is invalid"]}}


async def test_unknown_key_id(client: AsyncClient) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))
    payload = tokens.claims(user_id=user_id, session_id=session_id)

    await _invalid(client, tokens.sign(payload, kid="0123456789abcdef"))
    await _invalid(client, tokens.sign(payload, secret="a-key-this-server-has-never-known!!"))


async def test_previous_key_still_verifies_after_rotation(client: AsyncClient) -> None:
    user_id, session_id = tokens.session_of(await register(client, "alice"))

    token = tokens.sign(
        tokens.claims(user_id=user_id, session_id=session_id), secret=PREVIOUS_TEST_SECRET
    )

    assert (await client.get("/api/user", headers=auth(token))).status_code == 200


async def test_token_of_a_session_that_was_never_opened(client: AsyncClient) -> None:
    user_id, _ = tokens.session_of(await register(client, "alice"))

    await _invalid(
        client, tokens.sign(tokens.claims(user_id=user_id, session_id=tokens.random_session()))
    )


async def test_revoked_session_token_stops_working_at_once(client: AsyncClient) -> None:
    token = await register(client, "alice")

    await client.post("/api/auth/logout", headers=auth(token))

    await _invalid(client, token)


async def test_replayed_refresh_token_revokes_the_family(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    await register(client, "alice")
    first = await oauth_tokens(client, "alice")
    second = (
        await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    # A replay, not a refresh racing the first one (`sessions.REPLAY_GRACE`).
    await connection.execute(
        update(RefreshToken)
        .where(RefreshToken.used_at.is_not(None))
        .values(used_at=utcnow() - REPLAY_GRACE - timedelta(seconds=1))
    )

    await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert (
        await client.get("/api/user", headers=bearer(second["access_token"]))
    ).status_code == 401


async def test_login_failures_are_indistinguishable(client: AsyncClient) -> None:
    await register(client, "alice")

    unknown = await client.post(
        "/api/users/login", json={"user": {"email": "who@example.com", "password": PASSWORD}}
    )
    wrong = await client.post(
        "/api/users/login", json={"user": {"email": "alice@example.com", "password": "wrong-one"}}
    )

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json() == {"errors": {"credentials": ["invalid"]}}
