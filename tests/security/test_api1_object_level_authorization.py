"""API1:2023 Broken Object Level Authorization: nobody acts on another user's objects."""

import pytest
from httpx import AsyncClient

from tests.factories import auth, create_api_key, create_article, register

pytestmark = pytest.mark.anyio


async def test_cannot_change_or_delete_another_users_article(client: AsyncClient) -> None:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    slug = (await create_article(client, alice, body="original"))["slug"]

    updated = await client.put(
        f"/api/articles/{slug}", headers=auth(bob), json={"article": {"body": "defaced"}}
    )
    deleted = await client.delete(f"/api/articles/{slug}", headers=auth(bob))

    assert updated.status_code == deleted.status_code == 403
    article = (await client.get(f"/api/articles/{slug}")).json()["article"]
    assert article["body"] == "original"


async def test_cannot_delete_another_users_comment(client: AsyncClient) -> None:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    slug = (await create_article(client, alice))["slug"]
    comment = await client.post(
        f"/api/articles/{slug}/comments", headers=auth(alice), json={"comment": {"body": "mine"}}
    )

    response = await client.delete(
        f"/api/articles/{slug}/comments/{comment.json()['comment']['id']}", headers=auth(bob)
    )

    assert response.status_code == 403
    assert len((await client.get(f"/api/articles/{slug}/comments")).json()["comments"]) == 1


async def test_cannot_see_or_revoke_another_users_api_key(client: AsyncClient) -> None:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    key = await create_api_key(client, alice, scopes=["read"])

    listed = await client.get("/api/user/api-keys", headers=auth(bob))
    revoked = await client.delete(f"/api/user/api-keys/{key['id']}", headers=auth(bob))

    assert listed.json() == {"apiKeys": []}
    assert revoked.status_code == 404
    still_works = await client.get("/api/user", headers={"X-API-Key": key["key"]})
    assert still_works.json()["user"]["username"] == "alice"


async def test_an_api_key_acts_only_as_its_owner(client: AsyncClient) -> None:
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    slug = (await create_article(client, bob))["slug"]
    key = (await create_api_key(client, alice, scopes=["read", "write"]))["key"]

    response = await client.delete(f"/api/articles/{slug}", headers={"X-API-Key": key})

    assert response.status_code == 403
