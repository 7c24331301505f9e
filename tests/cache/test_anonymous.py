"""Anonymous reads answered before the framework (`conduit.cache.anonymous`) are the routes'
answers: the same status, body and ETag for every URL, valid or not."""

import pytest
from httpx import AsyncClient

from tests.factories import auth, create_article, favorite, register
from tests.statements import StatementRecorder

pytestmark = pytest.mark.anyio

# An empty X-API-Key is no credential to the routes, but keeps the request off the fast path.
THROUGH_THE_ROUTES = {"X-API-Key": ""}


async def test_the_fast_path_answers_as_the_routes_do(client: AsyncClient) -> None:
    author = await register(client, "author")
    slug = (await create_article(client, author, tags=["dragons"]))["slug"]
    await client.post(
        f"/api/articles/{slug}/comments", headers=auth(author), json={"comment": {"body": "Hi"}}
    )
    await favorite(client, await register(client, "fan"), slug)
    urls = [
        "/api/tags",
        "/api/articles",
        "/api/articles?limit=1&offset=0",
        "/api/articles?offset=1",
        "/api/articles?tag=dragons",
        "/api/articles?tag=",
        "/api/articles?author=author&favorited=fan",
        "/api/articles?unknown=1",
        "/api/articles?limit=0",
        "/api/articles?limit=101",
        "/api/articles?limit=many",
        "/api/articles?offset=-1",
        "/api/articles?limit=1&limit=2",
        f"/api/articles?tag={'x' * 256}",
        f"/api/articles/{slug}",
        "/api/articles/no-such-article",
        "/api/articles/feed",
        f"/api/articles/{slug}/comments",
        "/api/articles/no-such-article/comments",
        "/api/profiles/author",
        "/api/profiles/nobody",
        "/api/profiles/%C3%BCnicode",
    ]

    for url in urls:
        fast = await client.get(url)
        routed = await client.get(url, headers=THROUGH_THE_ROUTES)

        assert (fast.status_code, fast.content) == (routed.status_code, routed.content), url
        assert fast.headers.get("ETag") == routed.headers.get("ETag"), url
        assert "RateLimit" in fast.headers, url


async def test_the_fast_path_serves_hits_without_a_statement(
    client: AsyncClient, statements: StatementRecorder
) -> None:
    author = await register(client, "author")
    slug = (await create_article(client, author))["slug"]
    paths = ["/api/tags", "/api/articles", f"/api/articles/{slug}", "/api/profiles/author"]
    for path in paths:
        await client.get(path)
    statements.clear()

    answers = [await client.get(path) for path in paths]

    assert [answer.status_code for answer in answers] == [200] * len(paths)
    assert statements.count == 0
