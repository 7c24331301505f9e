import logging
import os
import re
import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.status import HTTP_413_CONTENT_TOO_LARGE, HTTP_500_INTERNAL_SERVER_ERROR
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conduit import database, metrics
from conduit.config import DatabaseSettings
from conduit.errors import app_error_response, error_response
from conduit.logs import ROUTE, USER_ID, access_logger, printable

logger = logging.getLogger(__name__)

# What an `X-Request-ID` from a client or proxy must look like to be kept, not replaced: a
# UUID, a trace id, a load balancer's id; nothing that could forge a log line.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_QUIET_PREFIXES = ("/health/", "/metrics")


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value
    return os.urandom(16).hex().encode()


class RequestContext:
    """The outermost layer of every HTTP request: its id (`X-Request-ID`, kept when well
    formed, else made, returned on the response and bound to every log line of the request),
    `HEAD` answered as `GET` without the body, one access line and the request metrics once
    it is answered, and the handler of last resort. The database being unavailable (down,
    unreachable, out of connections) is a 503 with `Retry-After` and one log line per interval
    (`conduit.database.report_unavailable`); any other error nothing else handled is logged
    once, with its traceback, and answered with a 500 in the API's error shape."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database_settings: DatabaseSettings,
        access_log: bool,
        metrics_enabled: bool,
    ) -> None:
        self.app = app
        self.database_settings = database_settings
        # Made when the middleware is, at the first request: after `create_app` configured it.
        self.access = access_logger() if access_log else None
        self.metrics_enabled = metrics_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        method: str = scope["method"]
        if method == "HEAD":
            # A copy: the server still knows the request as HEAD, and sends no body for it.
            scope = {**scope, "method": "GET"}
        status = HTTP_500_INTERNAL_SERVER_ERROR
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            elif method == "HEAD" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id.decode())
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if database.unavailable(error):
                database.report_unavailable(self.database_settings, error)
                failure = app_error_response(database.Unavailable("database"))
            else:
                path = printable(scope["path"])
                logger.exception("unhandled_error", extra={"method": method, "path": path})
                internal = {"server": ["internal error"]}
                failure = error_response(HTTP_500_INTERNAL_SERVER_ERROR, internal)
            if not answered:
                await failure(scope, receive, send_with_id)
        finally:
            self._answered(scope, method, status, time.perf_counter() - started, request_id)
            structlog.contextvars.reset_contextvars(**tokens)

    def _answered(
        self, scope: Scope, method: str, status: int, duration: float, request_id: bytes
    ) -> None:
        matched = scope.get("route")
        route: str | None
        if matched is None:
            route = scope.get(ROUTE)
        else:
            route = scope["app"].state.route_templates.get(id(matched)) or matched.path
        if self.metrics_enabled:
            metrics.REQUEST_DURATION.labels(method, route or "unmatched", status).observe(duration)
        if self.access is not None:
            # Polled every few seconds by platforms and scrapers: at DEBUG.
            quiet = scope["path"].startswith(_QUIET_PREFIXES)
            log = self.access.debug if quiet else self.access.info
            # Unmatched: the path asked for instead, as `printable` bounds it.
            unmatched = {} if route is not None else {"path": printable(scope["path"])}
            log(
                f"{method} {route or unmatched['path']} {status}",
                request_id=request_id.decode(),
                method=method,
                route=route,
                **unmatched,
                status=status,
                duration_ms=round(duration * 1000, 2),
                user_id=scope.get("state", {}).get(USER_ID),
            )


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a 413 in the API's error shape, whether the
    client declares the size up front or streams the body in chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            too_large = {"request": ["content too large"]}
            await error_response(HTTP_413_CONTENT_TOO_LARGE, too_large)(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI lets an HTTPException from the body stream through to the handlers.
                raise HTTPException(HTTP_413_CONTENT_TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)


# Answered with a token or a secret to requests that carry none (registration, sign-in,
# password resets, OAuth2): never stored (RFC 6749 section 5.1).
_SECRET_ANSWERS = ("/api/users", "/api/auth/")


class SecurityHeadersMiddleware:
    """Headers every response carries (OWASP Secure Headers, ASVS 14.4): no sniffing, no
    framing, no referrer; `Cache-Control: no-store` (and HTTP/1.0's `Pragma: no-cache`) on
    anything answered to a credentialed request or with a token; HSTS over HTTPS when
    configured."""

    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds else None
        # Headers no response of ours sets itself, so they are appended as raw bytes rather
        # than set one by one (a scan of the response's headers each).
        always = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        self.api_headers = [
            *always,
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        ]
        self.other_headers = [*always, (b"content-security-policy", b"frame-ancestors 'none'")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        credentialed = b"authorization" in request_headers or b"x-api-key" in request_headers
        path: str = scope["path"]
        fixed = self.api_headers if path.startswith("/api/") else self.other_headers
        no_store = credentialed or path.startswith(_SECRET_ANSWERS)
        hsts = self.hsts if scope["scheme"] == "https" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fixed]
                if no_store or hsts is not None:
                    headers = MutableHeaders(scope=message)
                    if no_store:
                        headers["Cache-Control"] = "no-store"
                        headers["Pragma"] = "no-cache"
                    if hsts is not None:
                        headers["Strict-Transport-Security"] = hsts
            await send(message)

        await self.app(scope, receive, send_with_headers)
