"""Small async functions that make what a test needs through the API, as a client would."""

from typing import Any

from httpx import AsyncClient

PASSWORD = "password123"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


async def register(client: AsyncClient, username: str, *, password: str = PASSWORD) -> str:
    """Register `username` (email `<username>@example.com`) and return its token."""
    response = await client.post(
        "/api/users",
        json={
            "user": {"username": username, "email": f"{username}@example.com", "password": password}
        },
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["user"]["token"]
    return token


async def create_article(
    client: AsyncClient,
    token: str,
    *,
    title: str = "How to train your dragon",
    description: str = "Ever wonder how?",
    body: str = "You have to believe",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/api/articles",
        headers=auth(token),
        json={
            "article": {
                "title": title,
                "description": description,
                "body": body,
                "tagList": tags or [],
            }
        },
    )
    assert response.status_code == 201, response.text
    article: dict[str, Any] = response.json()["article"]
    return article


async def add_comment(client: AsyncClient, token: str, slug: str, body: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/articles/{slug}/comments", headers=auth(token), json={"comment": {"body": body}}
    )
    assert response.status_code == 201, response.text
    comment: dict[str, Any] = response.json()["comment"]
    return comment


async def follow(client: AsyncClient, token: str, username: str) -> None:
    response = await client.post(f"/api/profiles/{username}/follow", headers=auth(token))
    assert response.status_code == 200, response.text


async def favorite(client: AsyncClient, token: str, slug: str) -> None:
    response = await client.post(f"/api/articles/{slug}/favorite", headers=auth(token))
    assert response.status_code == 200, response.text


async def oauth_tokens(client: AsyncClient, login: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/token", data={"username": login, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def create_api_key(
    client: AsyncClient, token: str, *, scopes: list[str], name: str = "ci"
) -> dict[str, Any]:
    response = await client.post(
        "/api/user/api-keys",
        headers=auth(token),
        json={"apiKey": {"name": name, "scopes": scopes}},
    )
    assert response.status_code == 201, response.text
    api_key: dict[str, Any] = response.json()["apiKey"]
    return api_key
