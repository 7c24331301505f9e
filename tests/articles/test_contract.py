"""Every endpoint that sends JSON the database builds (conduit.sql_json) bypasses its response
model; these tests hold that JSON to the models exactly: same keys, same types, and a round trip
through the model that changes nothing."""

from typing import Any

import pytest
from httpx import AsyncClient, Response
from pydantic import BaseModel

from conduit.api_keys.schemas import ApiKeysResponse, CreatedApiKeyResponse
from conduit.articles.schemas import ArticleResponse, MultipleArticlesResponse
from conduit.comments.schemas import CommentResponse, MultipleCommentsResponse
from conduit.profiles.schemas import ProfileResponse
from conduit.tags.schemas import TagsResponse
from tests.factories import auth, create_article, favorite, follow, register

pytestmark = pytest.mark.anyio


def _round_trips(model: type[BaseModel], body: dict[str, Any]) -> None:
    assert model.model_validate(body).model_dump(mode="json", by_alias=True) == body


async def test_reads_match_their_models(client: AsyncClient) -> None:
    author = await register(client, "author")
    reader = await register(client, "reader")
    await client.put(
        "/api/user",
        headers=auth(author),
        json={"user": {"bio": "Writes", "image": "https://example.com/a.png"}},
    )
    tagged = await create_article(client, author, title="Tagged", tags=["b", "a"])
    await create_article(client, author, title="Untagged", body='Quotes " and \\ and ünïcode')
    await favorite(client, reader, tagged["slug"])
    await follow(client, reader, "author")

    reads: list[tuple[type[BaseModel], str, dict[str, str]]] = [
        (MultipleArticlesResponse, "/api/articles", {}),
        (MultipleArticlesResponse, "/api/articles", auth(reader)),
        (MultipleArticlesResponse, "/api/articles?tag=nothing", {}),
        (MultipleArticlesResponse, "/api/articles/feed", auth(reader)),
        (MultipleArticlesResponse, "/api/articles/feed?offset=5", auth(reader)),
        (ArticleResponse, f"/api/articles/{tagged['slug']}", auth(reader)),
        (ArticleResponse, "/api/articles/untagged", {}),
        (TagsResponse, "/api/tags", {}),
        (ProfileResponse, "/api/profiles/author", {}),
        (ProfileResponse, "/api/profiles/author", auth(reader)),
        (MultipleCommentsResponse, f"/api/articles/{tagged['slug']}/comments", {}),
        (MultipleCommentsResponse, f"/api/articles/{tagged['slug']}/comments", auth(reader)),
        (ApiKeysResponse, "/api/user/api-keys", auth(reader)),
    ]
    comment = await client.post(
        f"/api/articles/{tagged['slug']}/comments",
        headers=auth(reader),
        json={"comment": {"body": "Nice"}},
    )
    writes: list[tuple[type[BaseModel], Response]] = [
        (CommentResponse, comment),
        (ProfileResponse, await client.delete("/api/profiles/author/follow", headers=auth(reader))),
        (ProfileResponse, await client.post("/api/profiles/author/follow", headers=auth(reader))),
        (
            ArticleResponse,
            await client.post(f"/api/articles/{tagged['slug']}/favorite", headers=auth(reader)),
        ),
        (
            CreatedApiKeyResponse,
            await client.post(
                "/api/user/api-keys",
                headers=auth(reader),
                json={
                    "apiKey": {
                        "name": "ci",
                        "scopes": ["read"],
                        "expiresAt": "2099-01-01T00:00:00Z",
                    }
                },
            ),
        ),
    ]
    for model, written in writes:
        assert written.status_code in {200, 201}, written.text
        _round_trips(model, written.json())
    for model, path, headers in reads:
        response = await client.get(path, headers=headers)
        assert response.headers["content-type"] == "application/json"
        _round_trips(model, response.json())

    listed = (await client.get("/api/articles", headers=auth(reader))).json()["articles"]
    assert [a["title"] for a in listed] == ["Untagged", "Tagged"]
    assert listed[1]["tagList"] == ["a", "b"]
    assert (listed[1]["favorited"], listed[1]["favoritesCount"]) == (True, 1)
    assert listed[0]["author"] == {
        "username": "author",
        "bio": "Writes",
        "image": "https://example.com/a.png",
        "following": True,
    }
    untagged = (await client.get("/api/articles/untagged")).json()["article"]
    assert untagged["body"] == 'Quotes " and \\ and ünïcode'
    assert untagged["tagList"] == []
