"""Anonymous reads answered before the framework (`conduit.fast_reads`) are the routes'
answers: the same status, body and ETag for every URL, valid or not; a route's parameters are
the fast path's, whatever they are."""

from typing import Annotated

import pytest
from fastapi import Query, Response
from httpx import ASGITransport, AsyncClient
from starlette.types import ASGIApp, Receive, Scope, Send

from conduit import api
from conduit.auth.dependencies import OptionalCaller
from conduit.cache import Cached
from conduit.config import Settings
from conduit.database import ReadSession
from conduit.edge import Edge
from conduit.main import create_app
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


def _recording(framework: ASGIApp, paths: list[str]) -> ASGIApp:
    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            paths.append(f"{scope['path']}?{scope['query_string'].decode()}")
        await framework(scope, receive, send)

    return recorded


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
async def test_a_parameter_added_to_a_cached_read_is_the_fast_paths_too(
    settings: Settings, cached: bool
) -> None:
    """With the cache off too (`CONDUIT_CACHE_ENABLED=false`), the reads take the fast path."""
    settings = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"enabled": cached})}
    )
    router = api.router(tags=["Echo"])

    @router.get("/echo")
    async def echo(
        db: ReadSession,
        caller: OptionalCaller,
        cache: Cached,
        word: Annotated[str, Query(max_length=5)] = "none",
        times: Annotated[int, Query(ge=1, le=3)] = 1,
    ) -> Response:
        del db, caller, cache
        return Response(word * times)

    app = create_app(settings)
    app.include_api(router)
    edge = app.build_middleware_stack()
    assert isinstance(edge, Edge)
    framework: list[str] = []
    edge.framework = _recording(edge.framework, framework)
    app.middleware_stack = edge
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        fast = [
            await client.get("/api/echo?word=hey&times=2"),
            await client.get("/api/echo"),
            await client.get("/api/echo?times=3&unknown=1"),
        ]
        refused = [
            await client.get("/api/echo?word=toolong"),
            await client.get("/api/echo?times=9"),
            await client.get("/api/echo?times=two"),
        ]
        credentialed = await client.get("/api/echo?word=hi", headers={"Authorization": "Token x"})

    assert [(answer.status_code, answer.text) for answer in fast] == [
        (200, "heyhey"),
        (200, "none"),
        (200, "nonenonenone"),
    ]
    assert [answer.status_code for answer in refused] == [422, 422, 422]
    assert refused[0].json() == {"errors": {"word": ["is too long (maximum is 5 characters)"]}}
    assert credentialed.status_code == 401
    assert framework == [
        "/api/echo?word=toolong",
        "/api/echo?times=9",
        "/api/echo?times=two",
        "/api/echo?word=hi",
    ]
