from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.auth.models import RefreshToken
from conduit.auth.sessions import REPLAY_GRACE
from conduit.database import utcnow
from tests.factories import PASSWORD, auth, bearer, oauth_tokens, register

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("login", ["jake", "JaKe", "jake@example.com", "JAKE@example.com"])
async def test_password_grant_with_username_or_email(client: AsyncClient, login: str) -> None:
    await register(client, "jake")

    response = await client.post("/api/auth/token", data={"username": login, "password": PASSWORD})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert response.headers["Cache-Control"] == "no-store"
    me = await client.get("/api/user", headers=bearer(body["access_token"]))
    assert me.json()["user"]["username"] == "jake"


async def test_password_grant_failure_follows_rfc_6749(client: AsyncClient) -> None:
    await register(client, "jake")

    wrong = await client.post("/api/auth/token", data={"username": "jake", "password": "nope"})
    unknown = await client.post("/api/auth/token", data={"username": "who", "password": "nope"})

    for response in (wrong, unknown):
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_grant",
            "error_description": "invalid username or password",
        }


async def test_refresh_rotates(client: AsyncClient) -> None:
    await register(client, "jake")
    first = await oauth_tokens(client, "jake")

    rotated = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        await client.get("/api/user", headers=bearer(second["access_token"]))
    ).status_code == 200
    again = await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 200


async def _rotated_once(client: AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Jake's first OAuth2 tokens, and those their refresh token was traded for."""
    await register(client, "jake")
    first = await oauth_tokens(client, "jake")
    second = (
        await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    return first, second


async def test_reusing_a_refresh_token_ends_the_session(
    client: AsyncClient, connection: AsyncConnection
) -> None:
    first, second = await _rotated_once(client)
    await connection.execute(
        update(RefreshToken)
        .where(RefreshToken.used_at.is_not(None))
        .values(used_at=utcnow() - REPLAY_GRACE - timedelta(seconds=1))
    )

    replay = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json() == {"errors": {"refresh_token": ["is invalid"]}}
    after = await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    me = await client.get("/api/user", headers=bearer(second["access_token"]))
    assert me.status_code == 401


async def test_a_replay_within_the_grace_is_refused_but_keeps_the_session(
    client: AsyncClient,
) -> None:
    first, second = await _rotated_once(client)

    replay = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json() == {"errors": {"refresh_token": ["is invalid"]}}
    me = await client.get("/api/user", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    after = await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 200


async def test_unknown_refresh_token(client: AsyncClient) -> None:
    response = await client.post("/api/auth/refresh", json={"refresh_token": "made-up"})

    assert response.status_code == 401
    assert response.json() == {"errors": {"refresh_token": ["is invalid"]}}


async def test_logout_ends_the_session_at_once(client: AsyncClient) -> None:
    await register(client, "jake")
    tokens = await oauth_tokens(client, "jake")
    other = await oauth_tokens(client, "jake")

    response = await client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))

    assert response.status_code == 204
    assert (
        await client.get("/api/user", headers=bearer(tokens["access_token"]))
    ).status_code == 401
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    assert (await client.get("/api/user", headers=bearer(other["access_token"]))).status_code == 200


async def test_logout_all_ends_every_session(client: AsyncClient) -> None:
    realworld = await register(client, "jake")
    tokens = await oauth_tokens(client, "jake")

    response = await client.post("/api/auth/logout-all", headers=auth(realworld))

    assert response.status_code == 204
    for headers in (auth(realworld), bearer(tokens["access_token"])):
        assert (await client.get("/api/user", headers=headers)).status_code == 401


async def test_new_password_ends_every_other_session(client: AsyncClient) -> None:
    current = await register(client, "jake")
    other = await oauth_tokens(client, "jake")

    response = await client.put(
        "/api/user", headers=auth(current), json={"user": {"password": "brand-new-password"}}
    )

    assert response.status_code == 200
    assert (await client.get("/api/user", headers=auth(current))).status_code == 200
    assert (await client.get("/api/user", headers=bearer(other["access_token"]))).status_code == 401
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_other_profile_changes_keep_sessions(client: AsyncClient) -> None:
    current = await register(client, "jake")
    other = await oauth_tokens(client, "jake")

    await client.put("/api/user", headers=auth(current), json={"user": {"bio": "new"}})

    assert (await client.get("/api/user", headers=bearer(other["access_token"]))).status_code == 200


async def test_openapi_declares_the_three_schemes(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2"]["flows"]["password"]["tokenUrl"] == "/api/auth/token"
    assert schemes["Token"] == schemes["Token"] | {"in": "header", "name": "Authorization"}
    assert schemes["APIKey"] == schemes["APIKey"] | {"in": "header", "name": "X-API-Key"}
    assert {"OAuth2": []} in schema["paths"]["/api/user"]["get"]["security"]
