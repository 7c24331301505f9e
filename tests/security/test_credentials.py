"""Credentials end together, and what would take an account over needs a recent sign-in: a
password change or reset, or signing out everywhere, revokes the API keys with the sessions;
creating a key or changing the email or password takes a session signed in recently (sudo
mode), and a new email is announced to the old address."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.auth.models import AuthSession, PasswordResetToken, User
from conduit.auth.tokens import digest
from conduit.config import Settings
from conduit.database import utcnow
from tests.background import run_jobs
from tests.factories import PASSWORD, auth, bearer, create_api_key, oauth_tokens, register
from tests.smtp import Mailbox

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a-new-password-42"
SIGN_IN_AGAIN = {"errors": {"session": ["sign in again to do this"]}}
ARTICLE = {"article": {"title": "t", "description": "d", "body": "b"}}


async def _login(client: AsyncClient, username: str, password: str) -> str:
    response = await client.post(
        "/api/users/login",
        json={"user": {"email": f"{username}@example.com", "password": password}},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["user"]["token"]
    return token


async def _user_id(connection: AsyncConnection, username: str) -> int:
    user_id = await connection.scalar(select(User.id).where(User.username == username))
    assert user_id is not None
    return user_id


async def _change_password(client: AsyncClient, connection: AsyncConnection, token: str) -> str:
    del connection
    response = await client.put(
        "/api/user", headers=auth(token), json={"user": {"password": NEW_PASSWORD}}
    )
    assert response.status_code == 200, response.text
    return NEW_PASSWORD


async def _reset_password(client: AsyncClient, connection: AsyncConnection, token: str) -> str:
    del token
    reset_token = "r" * 43
    await connection.execute(
        insert(PasswordResetToken).values(
            user_id=await _user_id(connection, "owner"),
            token_hash=digest(reset_token),
            job_id=uuid.uuid4(),
            created_at=utcnow(),
            expires_at=utcnow() + timedelta(minutes=30),
        )
    )
    response = await client.post(
        "/api/users/password-reset/confirm",
        json={"token": reset_token, "password": NEW_PASSWORD},
    )
    assert response.status_code == 204, response.text
    return NEW_PASSWORD


async def _logout_everywhere(client: AsyncClient, connection: AsyncConnection, token: str) -> str:
    del connection
    response = await client.post("/api/auth/logout-all", headers=auth(token))
    assert response.status_code == 204, response.text
    return PASSWORD


EndCredentials = Callable[[AsyncClient, AsyncConnection, str], Awaitable[str]]


@pytest.mark.parametrize(
    "end_credentials",
    [_change_password, _reset_password, _logout_everywhere],
    ids=["password change", "password reset", "logout-all"],
)
async def test_ending_the_credentials_revokes_the_api_keys(
    client: AsyncClient, connection: AsyncConnection, end_credentials: EndCredentials
) -> None:
    token = await register(client, "owner")
    key = (await create_api_key(client, token, scopes=["read", "write"]))["key"]
    other_token = await register(client, "bystander")
    other_key = (await create_api_key(client, other_token, scopes=["read"]))["key"]

    password = await end_credentials(client, connection, token)

    revoked = {"errors": {"api_key": ["has been revoked"]}}
    read = await client.get("/api/user", headers={"X-API-Key": key})
    assert read.status_code == 401
    assert read.json() == revoked
    written = await client.post("/api/articles", headers={"X-API-Key": key}, json=ARTICLE)
    assert written.status_code == 401
    assert written.json() == revoked
    listed = await client.get(
        "/api/user/api-keys", headers=auth(await _login(client, "owner", password))
    )
    [listed_key] = listed.json()["apiKeys"]
    assert listed_key["revokedAt"] is not None
    assert (await client.get("/api/user", headers={"X-API-Key": other_key})).status_code == 200
    others = await client.get("/api/user/api-keys", headers=auth(other_token))
    assert [k["revokedAt"] for k in others.json()["apiKeys"]] == [None]


async def _sign_in_long_ago(connection: AsyncConnection, settings: Settings, username: str) -> None:
    """Every session of `username` signed in just longer ago than a recent sign-in may be."""
    await connection.execute(
        update(AuthSession)
        .where(AuthSession.user_id == await _user_id(connection, username))
        .values(authenticated_at=utcnow() - timedelta(seconds=settings.auth.reauth_seconds + 1))
    )


async def _create_key(client: AsyncClient, headers: dict[str, str]) -> Response:
    return await client.post(
        "/api/user/api-keys", headers=headers, json={"apiKey": {"name": "ci", "scopes": ["read"]}}
    )


async def _change_email(client: AsyncClient, headers: dict[str, str]) -> Response:
    return await client.put(
        "/api/user", headers=headers, json={"user": {"email": "elsewhere@example.org"}}
    )


async def _change_own_password(client: AsyncClient, headers: dict[str, str]) -> Response:
    return await client.put("/api/user", headers=headers, json={"user": {"password": NEW_PASSWORD}})


SensitiveChange = Callable[[AsyncClient, dict[str, str]], Awaitable[Response]]
SENSITIVE = pytest.mark.parametrize(
    "change",
    [_create_key, _change_email, _change_own_password],
    ids=["create an API key", "change the email", "change the password"],
)


@SENSITIVE
async def test_a_sensitive_change_needs_a_recent_sign_in(
    client: AsyncClient, connection: AsyncConnection, settings: Settings, change: SensitiveChange
) -> None:
    old_token = await register(client, "owner")
    await _sign_in_long_ago(connection, settings, "owner")

    refused = await change(client, auth(old_token))

    assert refused.status_code == 403
    assert refused.json() == SIGN_IN_AGAIN
    allowed = await change(client, auth(await _login(client, "owner", PASSWORD)))
    assert allowed.status_code in {200, 201}, allowed.text


@SENSITIVE
async def test_a_refresh_is_not_a_sign_in(
    client: AsyncClient, connection: AsyncConnection, settings: Settings, change: SensitiveChange
) -> None:
    await register(client, "owner")
    tokens = await oauth_tokens(client, "owner")
    await _sign_in_long_ago(connection, settings, "owner")
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text

    response = await change(client, bearer(refreshed.json()["access_token"]))

    assert response.status_code == 403
    assert response.json() == SIGN_IN_AGAIN


async def test_an_old_session_still_does_everything_else(
    client: AsyncClient, connection: AsyncConnection, settings: Settings
) -> None:
    token = await register(client, "owner")
    created = await create_api_key(client, token, scopes=["read"])
    await _sign_in_long_ago(connection, settings, "owner")

    # The whole user sent back with a new bio, as RealWorld front ends do, email unchanged.
    profile = await client.put(
        "/api/user",
        headers=auth(token),
        json={"user": {"email": "owner@example.com", "username": "owner2", "bio": "hi"}},
    )
    listed = await client.get("/api/user/api-keys", headers=auth(token))
    deleted = await client.delete(f"/api/user/api-keys/{created['id']}", headers=auth(token))

    assert profile.status_code == 200, profile.text
    assert profile.json()["user"]["bio"] == "hi"
    assert listed.status_code == 200
    assert deleted.status_code == 204


async def test_the_old_address_hears_of_an_email_change(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox
) -> None:
    token = await register(committing_client, "mover")
    await run_jobs(app)
    mailbox.clear()

    response = await committing_client.put(
        "/api/user", headers=auth(token), json={"user": {"email": "new.home@example.org"}}
    )
    assert response.status_code == 200, response.text
    await run_jobs(app)

    [notice] = mailbox.messages
    assert notice["To"] == "mover@example.com"
    assert notice["Subject"] == "The email address of your Conduit account changed"
    body = notice.get_content()
    assert "n***@example.org" in body
    assert "new.home" not in body
    assert "If it was not you" in body
