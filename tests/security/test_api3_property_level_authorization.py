"""API3:2023 Broken Object Property Level Authorization: clients cannot set properties they do
not own (mass assignment), and responses expose nothing beyond the spec."""

import pytest
from httpx import AsyncClient

from tests.factories import auth, create_api_key, create_article, register

pytestmark = pytest.mark.anyio


async def test_article_server_owned_properties_are_ignored(client: AsyncClient) -> None:
    alice = await register(client, "alice")
    await register(client, "bob")

    response = await client.post(
        "/api/articles",
        headers=auth(alice),
        json={
            "article": {
                "title": "Mine",
                "description": "d",
                "body": "b",
                "slug": "chosen-slug",
                "author": {"username": "bob"},
                "authorId": 2,
                "favoritesCount": 1000,
                "favorited": True,
                "createdAt": "2001-01-01T00:00:00.000Z",
                "id": 1,
            }
        },
    )

    article = response.json()["article"]
    assert article["slug"] == "mine"
    assert article["author"]["username"] == "alice"
    assert (article["favoritesCount"], article["favorited"]) == (0, False)
    assert not article["createdAt"].startswith("2001")


async def test_user_update_ignores_server_owned_properties(client: AsyncClient) -> None:
    token = await register(client, "alice")

    response = await client.put(
        "/api/user",
        headers=auth(token),
        json={"user": {"bio": "hi", "id": 99, "passwordHash": "x", "token": "forged"}},
    )

    assert response.status_code == 200
    assert response.json()["user"]["token"] == token
    assert (await client.get("/api/user", headers=auth(token))).status_code == 200


async def test_responses_expose_no_private_fields(client: AsyncClient) -> None:
    token = await register(client, "alice")
    slug = (await create_article(client, token))["slug"]
    await client.post(
        f"/api/articles/{slug}/comments", headers=auth(token), json={"comment": {"body": "c"}}
    )
    key = await create_api_key(client, token, scopes=["read"])

    public = [
        await client.get("/api/profiles/alice"),
        await client.get(f"/api/articles/{slug}"),
        await client.get("/api/articles"),
        await client.get(f"/api/articles/{slug}/comments"),
    ]
    for response in public:
        assert "alice@example.com" not in response.text
        assert "argon2" not in response.text
    listed = await client.get("/api/user/api-keys", headers=auth(token))
    assert key["key"] not in listed.text
    assert "hash" not in listed.text.lower()
