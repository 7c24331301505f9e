import pytest
from httpx import AsyncClient

from tests.factories import auth, create_article, register

pytestmark = pytest.mark.anyio


async def test_tags_in_use_in_alphabetical_order(client: AsyncClient) -> None:
    token = await register(client, "jake")
    await create_article(client, token, title="One", tags=["zebra", "apple"])
    doomed = await create_article(client, token, title="Two", tags=["apple", "orphan"])
    await client.delete(f"/api/articles/{doomed['slug']}", headers=auth(token))

    response = await client.get("/api/tags")

    assert response.status_code == 200
    assert response.json() == {"tags": ["apple", "zebra"]}
