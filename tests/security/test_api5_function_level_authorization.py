"""API5:2023 Broken Function Level Authorization: a credential reaches only the functions it is
meant for. API keys are scoped by method, and never manage credentials."""

import pytest
from httpx import AsyncClient

from tests.factories import create_api_key, create_article, register

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/articles", {"article": {"title": "t", "description": "d", "body": "b"}}),
        ("POST", "/api/profiles/bob/follow", None),
        ("PUT", "/api/user", {"user": {"bio": "x"}}),
        ("POST", "/api/articles/{slug}/favorite", None),
        ("DELETE", "/api/articles/{slug}", None),
    ],
)
async def test_read_key_cannot_write(
    client: AsyncClient, method: str, path: str, body: object
) -> None:
    alice = await register(client, "alice")
    await register(client, "bob")
    slug = (await create_article(client, alice))["slug"]
    key = (await create_api_key(client, alice, scopes=["read"]))["key"]

    response = await client.request(
        method, path.format(slug=slug), headers={"X-API-Key": key}, json=body
    )

    assert response.status_code == 403
    assert response.json() == {"errors": {"api_key": ["lacks the write scope"]}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/user/api-keys", None),
        ("POST", "/api/user/api-keys", {"apiKey": {"name": "x", "scopes": ["read", "write"]}}),
        ("DELETE", "/api/user/api-keys/1", None),
        ("POST", "/api/auth/logout", None),
        ("POST", "/api/auth/logout-all", None),
    ],
)
async def test_api_keys_cannot_manage_credentials(
    client: AsyncClient, method: str, path: str, body: object
) -> None:
    token = await register(client, "alice")
    key = (await create_api_key(client, token, scopes=["read", "write"]))["key"]

    response = await client.request(method, path, headers={"X-API-Key": key}, json=body)

    assert response.status_code == 403
    assert response.json() == {"errors": {"api_key": ["can't manage credentials"]}}


async def test_credential_endpoints_require_a_signed_in_user(client: AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/user/api-keys"),
        ("POST", "/api/auth/logout"),
        ("POST", "/api/auth/logout-all"),
    ]:
        response = await client.request(method, path)

        assert response.status_code == 401
        assert response.json() == {"errors": {"token": ["is missing"]}}
