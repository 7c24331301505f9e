"""Password reset: a token emailed by a job, used once within 30 minutes, ending every session."""

import re

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from conduit.auth.models import PasswordResetToken
from conduit.database import transaction, utcnow
from tests.background import run_jobs
from tests.factories import auth, oauth_tokens, register
from tests.smtp import Mailbox

pytestmark = pytest.mark.anyio

NEW_PASSWORD = "a-new-password-42"


async def _request_reset(client: AsyncClient, email: str) -> None:
    response = await client.post("/api/users/password-reset", json={"user": {"email": email}})
    assert response.status_code == 202, response.text
    assert response.content == b""


def _token_in(mailbox: Mailbox) -> str:
    [message] = mailbox.messages
    assert message["Subject"] == "Reset your Conduit password"
    match = re.search(r"^([A-Za-z0-9_-]{43})\s*$", message.get_content(), re.MULTILINE)
    assert match is not None, message.get_content()
    return match.group(1)


async def _confirm(client: AsyncClient, token: str, password: str = NEW_PASSWORD) -> int:
    response = await client.post(
        "/api/users/password-reset/confirm", json={"token": token, "password": password}
    )
    if response.status_code != 204:
        assert response.json()["errors"], response.text
    return response.status_code


async def _login(client: AsyncClient, password: str) -> int:
    response = await client.post(
        "/api/users/login",
        json={"user": {"email": "forgetful@example.com", "password": password}},
    )
    return response.status_code


async def test_the_emailed_token_sets_a_new_password_once_and_ends_every_session(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox
) -> None:
    client = committing_client
    old_token = await register(client, "forgetful")
    refresh_token = (await oauth_tokens(client, "forgetful"))["refresh_token"]
    await run_jobs(app)
    mailbox.clear()

    await _request_reset(client, "Forgetful@Example.com")
    await run_jobs(app)
    token = _token_in(mailbox)
    assert mailbox.messages[0]["To"] == "forgetful@example.com"

    assert await _confirm(client, token) == 204
    assert await _login(client, "password123") == 401
    assert await _login(client, NEW_PASSWORD) == 200
    assert (await client.get("/api/user", headers=auth(old_token))).status_code == 401
    response = await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401
    # Once only.
    assert await _confirm(client, token, "yet-another-password") == 422
    assert await _login(client, NEW_PASSWORD) == 200


async def test_an_unknown_address_gets_the_same_answer_and_no_email(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    mailbox.clear()
    await _request_reset(committing_client, "nobody@example.com")
    await run_jobs(app)

    assert mailbox.messages == []
    async with async_sessionmaker(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(PasswordResetToken)) == 0


async def test_one_address_gets_at_most_three_emails_an_hour_whoever_asks(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox
) -> None:
    await register(committing_client, "forgetful")
    await run_jobs(app)
    mailbox.clear()

    for n in range(4):
        transport = ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 5000))
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            await _request_reset(client, "forgetful@example.com")
    await run_jobs(app)

    assert len(mailbox.messages) == 3


async def test_an_expired_token_or_a_wrong_one_is_refused(
    app: FastAPI, committing_client: AsyncClient, mailbox: Mailbox, engine: AsyncEngine
) -> None:
    client = committing_client
    await register(client, "forgetful")
    await run_jobs(app)
    mailbox.clear()
    await _request_reset(client, "forgetful@example.com")
    await run_jobs(app)
    token = _token_in(mailbox)
    async with transaction(async_sessionmaker(engine)) as session:
        await session.execute(update(PasswordResetToken).values(expires_at=utcnow()))

    assert await _confirm(client, token) == 422
    assert await _confirm(client, token[:-1] + ("A" if token[-1] != "A" else "B")) == 422
    assert await _login(client, "password123") == 200


@pytest.mark.parametrize(
    "body",
    [
        {"token": "x" * 43, "password": "short"},
        {"token": "", "password": NEW_PASSWORD},
        {"token": "x" * 201, "password": NEW_PASSWORD},
        {"password": NEW_PASSWORD},
        {"token": "x" * 43},
    ],
)
async def test_confirmation_is_validated(client: AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/users/password-reset/confirm", json=body)
    assert response.status_code == 422
    assert response.json()["errors"]


@pytest.mark.parametrize("email", ["", "not-an-address", None])
async def test_the_request_needs_an_address(client: AsyncClient, email: str | None) -> None:
    response = await client.post("/api/users/password-reset", json={"user": {"email": email}})
    assert response.status_code == 422
    assert "email" in response.json()["errors"]
