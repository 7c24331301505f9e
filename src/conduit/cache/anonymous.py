"""Anonymous reads of cached documents, answered before the framework.

An anonymous GET of an article list, an article, its comments, a profile or the tags is most
of a blog's traffic, and once its document is cached FastAPI's routing, dependency solving and
exception handling cost more than the hit itself (docs/benchmarks.md, issue 9), as Django's
per-site cache answers from middleware for the same reason. `AnonymousReads` recognises those
requests, validates their parameters with the routes' own types, and answers them with the very
`CachedRead` the route would use, through the same `Cache.respond`: counted against the
client's rate limit in the lookup's round trip, served from the cache or built and stored.
Anything it does not recognise exactly (credentials, another method, a parameter that does not
validate, a repeated one) goes on to FastAPI untouched, with nothing counted, and gets the
route's answer, a 422 included.
"""

import re
from collections.abc import Callable
from typing import Any

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from starlette._utils import get_route_path
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from conduit.articles import reads as articles_reads
from conduit.articles.router import DEFAULT_PAGE_SIZE, Filter, Limit, Offset
from conduit.auth.dependencies import Caller
from conduit.cache.core import CachedRead
from conduit.comments import reads as comments_reads
from conduit.database import Reader
from conduit.errors import AppError, app_error_response
from conduit.logs import ROUTE
from conduit.profiles import reads as profiles_reads
from conduit.schemas import PathName
from conduit.tags import reads as tags_reads

_ARTICLE = re.compile(r"/api/articles/([^/]+)")
_COMMENTS = re.compile(r"/api/articles/([^/]+)/comments")
_PROFILE = re.compile(r"/api/profiles/([^/]+)")
_FILTER = TypeAdapter(Filter)
_NAME = TypeAdapter(PathName)
_PAGE_PARAMETERS: dict[str, TypeAdapter[Any]] = {
    "tag": _FILTER,
    "author": _FILTER,
    "favorited": _FILTER,
    "limit": TypeAdapter(Limit),
    "offset": TypeAdapter(Offset),
}

_Match = Callable[[Reader], CachedRead]


def _page(query_string: bytes) -> _Match | None:
    """`GET /api/articles`, if its parameters are valid and none is repeated."""
    given: dict[str, str] = {}
    for name, value in QueryParams(query_string).multi_items():
        if name in _PAGE_PARAMETERS:
            if name in given:
                return None
            given[name] = value
    try:
        parameters = {
            name: _PAGE_PARAMETERS[name].validate_python(value) for name, value in given.items()
        }
    except ValidationError:
        return None
    return lambda db: articles_reads.cached_page(
        db,
        tag=parameters.get("tag"),
        author=parameters.get("author"),
        favorited_by=parameters.get("favorited"),
        limit=parameters.get("limit", DEFAULT_PAGE_SIZE),
        offset=parameters.get("offset", 0),
    )


def _named(found: re.Match[str] | None) -> str | None:
    """The slug or username a path names, if the route would take it."""
    if found is None:
        return None
    try:
        return _NAME.validate_python(found[1])
    except ValidationError:
        return None


def _match(scope: Scope) -> tuple[str, _Match] | None:
    """The route's template and its read, for a request this layer answers; the routes
    themselves answer the requests they refuse."""
    # The path as Starlette's routing matches it (without a root path).
    path = get_route_path(scope)
    if path == "/api/tags":
        return "/api/tags", tags_reads.cached
    if path == "/api/articles":
        page = _page(scope["query_string"])
        return None if page is None else ("/api/articles", page)
    if (slug := _named(_ARTICLE.fullmatch(path))) and slug != "feed":
        return "/api/articles/{slug}", lambda db: articles_reads.cached_article(db, slug=slug)
    if slug := _named(_COMMENTS.fullmatch(path)):
        return "/api/articles/{slug}/comments", lambda db: comments_reads.cached(db, slug=slug)
    if username := _named(_PROFILE.fullmatch(path)):
        return "/api/profiles/{username}", lambda db: profiles_reads.cached(db, username=username)
    return None


def _anonymous_get(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] == "GET"
        and not any(name in {b"authorization", b"x-api-key"} for name, _ in scope["headers"])
    )


class AnonymousReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = _match(scope) if _anonymous_get(scope) else None
        if matched is None:
            await self.app(scope, receive, send)
            return
        scope[ROUTE], match = matched
        request = Request(scope, receive)
        state = request.app.state
        try:
            response = await state.cache.respond(
                Caller(request, None), match(state.database.reader)
            )
        except AppError as error:
            response = app_error_response(error)
        await response(scope, receive, send)
