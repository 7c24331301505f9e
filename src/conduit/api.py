"""The API's routers: a domain's routes under `/api`, each named in the OpenAPI document for
its function (the operation ids that `conduit.openapi`'s links refer to), and each documented
as answering 429 to a caller over its rate limit.

The app takes a router's routes as its own (`conduit.main.Conduit.include_api`) rather than
through `include_router`, so they are built once: FastAPI builds an included router's routes a
second time, on the first request, and matches every request through one more level. The cost
is FastAPI's `app.dependency_overrides`, which reaches only routes it built for the app; the
tests run the real dependencies."""

from enum import Enum

from fastapi import APIRouter
from fastapi.routing import APIRoute

from conduit.errors import responses

PREFIX = "/api"


def operation_id(route: APIRoute) -> str:
    """The route's function name: `get_article`, `create_article`."""
    return route.name


def router(prefix: str = "", *, tags: list[str | Enum]) -> APIRouter:
    """A domain's router, its routes at `/api` + `prefix` + their own path."""
    return APIRouter(
        prefix=PREFIX + prefix,
        tags=tags,
        responses=responses(429),
        generate_unique_id_function=operation_id,
    )
