from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from conduit.api_keys.models import ApiKey
from tests.factories import auth, create_api_key, create_article, register

pytestmark = pytest.mark.anyio


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_create_shows_the_secret_once(client: AsyncClient) -> None:
    token = await register(client, "jake")
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)

    response = await client.post(
        "/api/user/api-keys",
        headers=auth(token),
        json={
            "apiKey": {
                "name": "deploy bot",
                "scopes": ["write", "read"],
                "expiresAt": expires.isoformat(),
            }
        },
    )

    assert response.status_code == 201
    created = response.json()["apiKey"]
    assert created["name"] == "deploy bot"
    assert created["scopes"] == ["read", "write"]
    assert created["key"].startswith("cdt_")
    assert created["key"].startswith(created["prefix"])
    assert created["expiresAt"] == expires.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert created["lastUsedAt"] is None
    assert created["revokedAt"] is None
    listed = (await client.get("/api/user/api-keys", headers=auth(token))).json()["apiKeys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert created["key"] not in str(listed)


async def test_a_key_authenticates_and_records_its_use(client: AsyncClient) -> None:
    token = await register(client, "jake")
    key = (await create_api_key(client, token, scopes=["read"]))["key"]

    response = await client.get("/api/user", headers=key_header(key))

    assert response.status_code == 200
    assert response.json()["user"]["username"] == "jake"
    assert response.json()["user"]["token"] == ""
    listed = (await client.get("/api/user/api-keys", headers=auth(token))).json()["apiKeys"]
    assert listed[0]["lastUsedAt"] is not None


async def test_read_key_cannot_write_and_write_key_can(client: AsyncClient) -> None:
    token = await register(client, "jake")
    read = (await create_api_key(client, token, scopes=["read"]))["key"]
    write = (await create_api_key(client, token, scopes=["write"]))["key"]
    article = {"article": {"title": "t", "description": "d", "body": "b"}}

    refused = await client.post("/api/articles", headers=key_header(read), json=article)
    written = await client.post("/api/articles", headers=key_header(write), json=article)
    write_only_reads = await client.get("/api/articles/feed", headers=key_header(write))

    assert refused.status_code == 403
    assert refused.json() == {"errors": {"api_key": ["lacks the write scope"]}}
    assert written.status_code == 201
    assert written.json()["article"]["author"]["username"] == "jake"
    assert write_only_reads.status_code == 403


async def test_revoked_key_stops_working(client: AsyncClient) -> None:
    token = await register(client, "jake")
    created = await create_api_key(client, token, scopes=["read"])

    revoked = await client.delete(f"/api/user/api-keys/{created['id']}", headers=auth(token))

    assert revoked.status_code == 204
    response = await client.get("/api/user", headers=key_header(created["key"]))
    assert response.status_code == 401
    assert response.json() == {"errors": {"api_key": ["is invalid"]}}
    again = await client.delete(f"/api/user/api-keys/{created['id']}", headers=auth(token))
    assert again.status_code == 404


async def test_expired_key_is_refused(client: AsyncClient, connection: AsyncConnection) -> None:
    token = await register(client, "jake")
    created = await create_api_key(client, token, scopes=["read"])
    await connection.execute(
        update(ApiKey)
        .where(ApiKey.id == created["id"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )

    response = await client.get("/api/user", headers=key_header(created["key"]))

    assert response.status_code == 401
    assert response.json() == {"errors": {"api_key": ["has expired"]}}


async def test_keys_are_stored_hashed(client: AsyncClient, connection: AsyncConnection) -> None:
    token = await register(client, "jake")
    created = await create_api_key(client, token, scopes=["read"])

    stored = (await connection.execute(select(ApiKey.key_hash, ApiKey.prefix))).one()

    assert created["key"] not in stored
    assert len(stored.key_hash) == 64


@pytest.mark.parametrize(
    ("api_key", "errors"),
    [
        ({"name": "", "scopes": ["read"]}, {"name": ["can't be blank"]}),
        ({"name": "x", "scopes": []}, {"scopes": ["has too few items (minimum is 1)"]}),
        ({"name": "x", "scopes": ["admin"]}, {"scopes": ["is invalid"]}),
        (
            {"name": "x", "scopes": ["read"], "expiresAt": "2001-01-01T00:00:00Z"},
            {"expiresAt": ["must be in the future"]},
        ),
        (
            {"name": "x", "scopes": ["read"], "expiresAt": "2999-01-01T00:00:00"},
            {"expiresAt": ["is invalid"]},
        ),
        # Its UTC time is past what Python's datetime (and so either database driver) holds.
        (
            {"name": "x", "scopes": ["read"], "expiresAt": "9999-12-31T23:59:59.999999-14:00"},
            {"expiresAt": ["must be at most 36500 days ahead"]},
        ),
        (
            {"name": "x", "scopes": ["read"], "expiresAt": "2200-01-01T00:00:00Z"},
            {"expiresAt": ["must be at most 36500 days ahead"]},
        ),
    ],
)
async def test_create_validation(
    client: AsyncClient, api_key: dict[str, object], errors: dict[str, list[str]]
) -> None:
    token = await register(client, "jake")

    response = await client.post(
        "/api/user/api-keys", headers=auth(token), json={"apiKey": api_key}
    )

    assert response.status_code == 422
    assert response.json() == {"errors": errors}


async def test_key_and_token_together_are_refused(client: AsyncClient) -> None:
    token = await register(client, "jake")
    key = (await create_api_key(client, token, scopes=["read"]))["key"]

    response = await client.get("/api/user", headers=auth(token) | key_header(key))

    assert response.status_code == 401
    assert response.json() == {
        "errors": {"token": ["send either Authorization or X-API-Key, not both"]}
    }


async def test_write_key_edits_profile_but_not_credentials(client: AsyncClient) -> None:
    token = await register(client, "jake")
    key = (await create_api_key(client, token, scopes=["read", "write"]))["key"]
    await create_article(client, token)

    bio = await client.put("/api/user", headers=key_header(key), json={"user": {"bio": "bot"}})
    password = await client.put(
        "/api/user", headers=key_header(key), json={"user": {"password": "new-password-1"}}
    )

    assert bio.status_code == 200
    assert password.status_code == 403
    assert password.json() == {"errors": {"api_key": ["can't change email or password"]}}
