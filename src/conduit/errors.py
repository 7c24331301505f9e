"""The API's error shape, `{"errors": {"<field>": ["<message>"]}}`, and its handlers."""

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from conduit import request_state

ErrorBody = dict[str, dict[str, list[str]]]


class AppError(Exception):
    status_code = status.HTTP_400_BAD_REQUEST
    message = "is invalid"
    headers: Mapping[str, str] | None = None
    # The request's writes are committed even though it fails, e.g. revoking a session whose
    # refresh token was replayed.
    keeps_changes: ClassVar[bool] = False

    def __init__(self, field: str, message: str | None = None) -> None:
        self.field = field
        if message is not None:
            self.message = message
        super().__init__(f"{field} {self.message}")


class NotFound(AppError):
    status_code = status.HTTP_404_NOT_FOUND
    message = "not found"


class Forbidden(AppError):
    status_code = status.HTTP_403_FORBIDDEN
    message = "forbidden"


class Conflict(AppError):
    status_code = status.HTTP_409_CONFLICT
    message = "has already been taken"


class Unauthorized(AppError):
    status_code = status.HTTP_401_UNAUTHORIZED
    message = "is invalid"
    headers: Mapping[str, str] | None = MappingProxyType({"WWW-Authenticate": "Token"})


class Unprocessable(AppError):
    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT


class TooManyRequests(AppError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, retry_after: int) -> None:
        super().__init__("rate_limit", f"too many requests, retry in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


class OAuth2Error(Exception):
    """An error of the OAuth2 token endpoint, rendered as RFC 6749 section 5.2 says."""

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}")


class ErrorResponse(BaseModel):
    """`{"errors": {"<field>": ["<message>"]}}`: what every error of the API looks like."""

    errors: dict[str, list[str]]


class OAuth2ErrorResponse(BaseModel):
    """RFC 6749 section 5.2: the token endpoint's errors."""

    error: str
    error_description: str


_RESPONSE_DESCRIPTIONS = {
    status.HTTP_401_UNAUTHORIZED: "Credentials missing, invalid, expired or signed out.",
    status.HTTP_403_FORBIDDEN: "Not yours to change, or the API key lacks the scope.",
    status.HTTP_404_NOT_FOUND: "No such resource.",
    status.HTTP_409_CONFLICT: "Already taken.",
    status.HTTP_413_CONTENT_TOO_LARGE: "The body is over the size limit.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: (
        "Invalid input, each field saying what is wrong; a body that is not JSON (or not UTF-8)"
        " is `body`."
    ),
    status.HTTP_429_TOO_MANY_REQUESTS: "Rate limited; retry after `Retry-After` seconds.",
    status.HTTP_503_SERVICE_UNAVAILABLE: (
        "The database is unavailable or too slow; retry after `Retry-After` seconds."
    ),
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until the request may succeed.",
        "schema": {"type": "integer"},
    },
}
_RATE_LIMIT_HEADERS = {
    **_RETRY_AFTER,
    "RateLimit-Policy": {
        "description": 'The policies that apply, e.g. `"anonymous";q=300;w=60`.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left of each policy, e.g. `"anonymous";r=0;t=12`.',
        "schema": {"type": "string"},
    },
}


def _error_content() -> dict[str, Any]:
    """The API's error shape as an OpenAPI response's content: `ErrorResponse`, which
    `conduit.openapi` puts in the document's components. Referred to rather than given as the
    response's `model`, for which FastAPI builds a field per route and status code: a
    sixtieth of a start, for the document alone."""
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route declares in OpenAPI, all in the API's error shape. A route
    with parameters declares 422 too: FastAPI would otherwise document its own validation error,
    which is not the shape Conduit sends."""
    return {
        code: {"description": _RESPONSE_DESCRIPTIONS[code]}
        | ({"headers": _HEADERS[code]} if code in _HEADERS else {})
        | {"content": _error_content()}
        for code in status_codes
    }


_HEADERS = {
    status.HTTP_429_TOO_MANY_REQUESTS: _RATE_LIMIT_HEADERS,
    status.HTTP_503_SERVICE_UNAVAILABLE: _RETRY_AFTER,
}


OAUTH2_RESPONSES: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {
        "model": OAuth2ErrorResponse,
        "description": "`invalid_grant`: wrong username or password.",
    },
    **responses(status.HTTP_422_UNPROCESSABLE_CONTENT),
}


def error_body(errors: Mapping[str, Sequence[str]]) -> ErrorBody:
    return {"errors": {field: list(messages) for field, messages in errors.items()}}


def error_response(
    status_code: int,
    errors: Mapping[str, Sequence[str]],
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(errors), status_code=status_code, headers=headers)


_MESSAGES = {
    "missing": "can't be blank",
    "json_invalid": "is not valid JSON",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "bool_type": "must be a boolean",
    "string_type": "must be a string",
}
_TEMPLATES = {
    "string_too_short": "is too short (minimum is {min_length} characters)",
    "too_short": "is too short (minimum is {min_length} characters)",
    "string_too_long": "is too long (maximum is {max_length} characters)",
    "too_long": "is too long (maximum is {max_length} characters)",
    "list_too_long": "has too many items (maximum is {max_length})",
    "list_too_short": "has too few items (minimum is {min_length})",
    "less_than_equal": "must be less than or equal to {le}",
    "greater_than_equal": "must be greater than or equal to {ge}",
    "value_error": "{error}",
}


def _validation_message(error: Mapping[str, Any]) -> str:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx", {})
    if kind.endswith("_type") and error.get("input") is None:
        return "can't be blank"
    if kind in {"too_long", "too_short"} and ctx.get("field_type") in {"List", "Set"}:
        kind = f"list_{kind}"
    if template := _TEMPLATES.get(kind):
        return template.format_map(ctx)
    return _MESSAGES.get(kind, "is invalid")


def _validation_field(loc: Sequence[int | str]) -> str:
    """The innermost named location: `("body", "user", "email")` is `email`."""
    names = [part for part in loc if isinstance(part, str)]
    if len(names) <= 1:
        return "body" if not names or names[0] == "body" else names[0]
    return names[-1]


def validation_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    rendered: dict[str, list[str]] = {}
    for error in errors:
        field = "body" if error["type"] == "json_invalid" else _validation_field(error["loc"])
        message = _validation_message(error)
        messages = rendered.setdefault(field, [])
        if message not in messages:
            messages.append(message)
    return rendered


_HTTP_MESSAGES = {
    status.HTTP_404_NOT_FOUND: "not found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method not allowed",
    status.HTTP_413_CONTENT_TOO_LARGE: "content too large",
}


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allow(request: Request) -> str:
    """Every method of the path, not just those of the first route matching it (Starlette's
    `Allow`); HEAD wherever GET is (`conduit.edge.Edge`)."""
    routes = request.app.router.routes
    allowed = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def app_error_response(error: AppError) -> JSONResponse:
    return error_response(error.status_code, {error.field: [error.message]}, error.headers)


def register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def handle_app_error(_: Request, exc: AppError) -> JSONResponse:
        return app_error_response(exc)

    @app.exception_handler(OAuth2Error)
    async def handle_oauth2_error(_: Request, exc: OAuth2Error) -> JSONResponse:
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=status.HTTP_400_BAD_REQUEST,
            headers={"Cache-Control": "no-store"},
        )

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        # A caller let in but left for its route to count: the route did not run.
        count = request_state.of(request.scope).uncounted
        if count is not None:
            try:
                await count()
            except TooManyRequests as refused:
                return await handle_app_error(request, refused)
        return error_response(
            status.HTTP_422_UNPROCESSABLE_CONTENT, validation_errors(exc.errors())
        )

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == status.HTTP_400_BAD_REQUEST:
            # FastAPI's answer to a body it could not decode (not UTF-8, a broken form): the
            # same 422 as a body that is not JSON, one rule for every unreadable body.
            return error_response(
                status.HTTP_422_UNPROCESSABLE_CONTENT, {"body": [_MESSAGES["json_invalid"]]}
            )
        headers = exc.headers
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers = {"Allow": _allow(request)}
        message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail).lower())
        return error_response(exc.status_code, {"request": [message]}, headers)
