"""Concurrent requests that really commit, against the real database."""

import asyncio

import pytest
from httpx import AsyncClient

from tests.factories import PASSWORD, auth, create_article, register

pytestmark = pytest.mark.anyio

PARALLEL = 8


async def test_concurrent_duplicate_registrations(committing_client: AsyncClient) -> None:
    user = {"username": "twin", "email": "twin@example.com", "password": PASSWORD}

    responses = await asyncio.gather(
        *(committing_client.post("/api/users", json={"user": user}) for _ in range(PARALLEL))
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (PARALLEL - 1)
    for response in responses:
        if response.status_code == 409:
            assert response.json() == {"errors": {"username": ["has already been taken"]}}


async def test_concurrent_identical_titles_get_distinct_slugs(
    committing_client: AsyncClient,
) -> None:
    token = await register(committing_client, "writer")

    articles = await asyncio.gather(
        *(create_article(committing_client, token, title="Same title") for _ in range(PARALLEL))
    )

    slugs = {article["slug"] for article in articles}
    assert len(slugs) == PARALLEL
    assert "same-title" in slugs
    listed = await committing_client.get("/api/articles")
    assert listed.json()["articlesCount"] == PARALLEL


async def test_concurrent_favorites_count_exactly(committing_client: AsyncClient) -> None:
    author = await register(committing_client, "author")
    slug = (await create_article(committing_client, author))["slug"]
    fans = [await register(committing_client, f"fan{number}") for number in range(PARALLEL)]

    responses = await asyncio.gather(
        *(
            committing_client.post(f"/api/articles/{slug}/favorite", headers=auth(token))
            for token in fans + fans
        )
    )

    assert {response.status_code for response in responses} == {200}
    article = await committing_client.get(f"/api/articles/{slug}")
    assert article.json()["article"]["favoritesCount"] == PARALLEL
