"""Cached anonymous reads answered without the framework, built from the routes themselves.

An anonymous GET of an article list, an article, its comments, a profile or the tags is most
of a blog's traffic, and once its document is cached FastAPI's routing, dependency solving and
middleware cost more than the hit itself (docs/benchmarks.md), as Django's per-site cache
answers from middleware for the same reason. With the cache off (`CONDUIT_CACHE_ENABLED=false`)
the same reads take the same path, each built from the database.

A route declares itself a cached read by what it asks for: the read cache (`Cached`), a caller
who may be anonymous (`OptionalCaller` or `AnonymousCaller`), and nothing else but the read
session and its path and query parameters. For each such route, `FastReads` matches the path
with Starlette's own `Route.matches` (the route's path and convertors), validates the
parameters with the route's own fields (their types, constraints and defaults), solves the
dependencies with the request alone (an optional caller is an anonymous one: the request sent
no credentials) and calls the route's endpoint. Whatever does not validate goes on to the
framework untouched, with nothing counted, and gets the route's own answer, a 422 included: the
fast path refuses exactly what the route refuses, because it does not refuse anything itself.
"""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic.fields import FieldInfo
from starlette.datastructures import QueryParams
from starlette.routing import Match, Route
from starlette.types import Scope

from conduit.auth.dependencies import anonymous_caller, optional_caller
from conduit.cache import cache_of
from conduit.database import read_session

Endpoint = Callable[..., Awaitable[Response]]
# A dependency the fast path solves from the request alone.
_Solve = Callable[[Request], Awaitable[object]]
_SOLVED: dict[Callable[..., Any], _Solve] = {
    read_session: read_session,
    cache_of: cache_of,
    anonymous_caller: anonymous_caller,
    # The request sent no credentials: the caller is anonymous.
    optional_caller: anonymous_caller,
}


# What a parameter of a cached read may be: one value, validated as the route validates it.
_SCALARS: frozenset[Any] = frozenset(
    {str, int, float, bool, str | None, int | None, float | None, bool | None}
)


class ModelField(Protocol):
    """What the fast path uses of FastAPI's field of a parameter (`Dependant.query_params`)."""

    name: str
    field_info: FieldInfo

    @property
    def alias(self) -> str: ...

    @property
    def default(self) -> object: ...

    def validate(self, value: object) -> tuple[object, list[Any]]: ...


@dataclass(frozen=True, slots=True)
class _Parameter:
    """A path or query parameter, validated by the route's own field: its type and constraints,
    its default when absent."""

    field: ModelField

    @classmethod
    def of(cls, field: ModelField) -> "_Parameter | None":
        info = field.field_info
        if info.annotation not in _SCALARS or info.validation_alias or info.validate_default:
            return None
        return cls(field)

    def value(self, given: str | None) -> tuple[bool, object]:
        """Whether `given` validates, and what it validates to."""
        if given is None:
            required = self.field.field_info.is_required()
            return not required, None if required else self.field.default
        value, errors = self.field.validate(given)
        return not errors, value


@dataclass(frozen=True, slots=True)
class FastRead:
    """A cached read route, as the fast path calls it."""

    template: str
    endpoint: Endpoint
    path: tuple[_Parameter, ...]
    query: tuple[_Parameter, ...]
    dependencies: tuple[tuple[str, _Solve], ...]

    async def respond(self, request: Request, path_params: dict[str, Any]) -> Response | None:
        """The route's response, or None when a parameter does not validate."""
        values: dict[str, object] = {}
        for parameter in self.path:
            valid, values[parameter.field.name] = parameter.value(
                path_params[parameter.field.alias]
            )
            if not valid:
                return None
        if self.query:
            query = QueryParams(request.scope["query_string"])
            for parameter in self.query:
                valid, values[parameter.field.name] = parameter.value(
                    query.get(parameter.field.alias)
                )
                if not valid:
                    return None
        for name, solve in self.dependencies:
            values[name] = await solve(request)
        return await self.endpoint(**values)


def _fast_read(route: APIRoute) -> FastRead | None:
    dependant = route.dependant
    if (
        dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.request_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
    ):
        return None
    calls = {dependency.call for dependency in dependant.dependencies}
    if cache_of not in calls or not calls & {anonymous_caller, optional_caller}:
        return None
    dependencies: list[tuple[str, _Solve]] = []
    for dependency in dependant.dependencies:
        solve = _SOLVED.get(dependency.call) if dependency.call is not None else None
        if solve is None or dependency.name is None:
            return None
        dependencies.append((dependency.name, solve))
    path = [_Parameter.of(field) for field in dependant.path_params]
    query = [_Parameter.of(field) for field in dependant.query_params]
    if None in path or None in query:
        return None
    return FastRead(
        route.path_format,
        route.endpoint,
        tuple(parameter for parameter in path if parameter is not None),
        tuple(parameter for parameter in query if parameter is not None),
        tuple(dependencies),
    )


class FastReads:
    """The GET routes, in the order the framework matches them, and the cached reads among
    them. A request is answered here only if the first route matching it is a cached read: a
    route before it that matches too takes it, as it would in the framework."""

    def __init__(self, routes: Iterable[APIRoute]) -> None:
        self._table = [
            (
                Route(route.path, route.endpoint, methods=["GET"]),
                _fast_read(route),
            )
            for route in routes
            if route.methods and "GET" in route.methods
        ]

    def match(self, scope: Scope) -> tuple[FastRead, dict[str, Any]] | None:
        """The cached read answering this GET, with its path's parameters, if one does."""
        for route, read in self._table:
            matched, child = route.matches(scope)
            if matched is Match.FULL:
                return None if read is None else (read, child["path_params"])
        return None
