"""The outermost layer of every HTTP request, in one pass: its id, its headers, its answer of
last resort, its access line and metrics, and the answer itself when it is a cached anonymous
read (`conduit.fast_reads`).

Everything else goes on to the framework (FastAPI's own middleware, routing and dependencies)
through one wrapper of `send`. A cached read answered here pays for nothing else: its response
goes out as two ASGI messages with every header already in place.
"""

import logging
import os
import re
import time
from collections.abc import Callable

import structlog
from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.status import HTTP_413_CONTENT_TOO_LARGE, HTTP_500_INTERNAL_SERVER_ERROR
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conduit import database, metrics, request_state
from conduit.config import Settings
from conduit.errors import AppError, app_error_response, error_response
from conduit.fast_reads import FastReads
from conduit.logs import access_logger, printable
from conduit.ratelimit.dependencies import rate_limit_headers
from conduit.request_state import RequestState

logger = logging.getLogger(__name__)

# What an `X-Request-ID` from a client or proxy must look like to be kept, not replaced: a
# UUID, a trace id, a load balancer's id; nothing that could forge a log line.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_QUIET_PREFIXES = ("/health/", "/metrics")
# Answered with a token or a secret to requests that carry none (registration, sign-in,
# password resets, OAuth2): never stored (RFC 6749 section 5.1).
_SECRET_ANSWERS = ("/api/users", "/api/auth/")
# The methods the metrics name; any other is `OTHER`, so that clients cannot add labels.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BODY_HEADERS = (b"content-length", b"transfer-encoding")
_CREDENTIALS = (b"authorization", b"x-api-key")

Headers = list[tuple[bytes, bytes]]


def last_resort(_: Request, error: Exception) -> Response:
    """The answer to an error nothing else handled: the database being unavailable (down,
    unreachable, out of connections) is a 503 with `Retry-After`, anything else a 500, both
    in the API's error shape. The framework sends it for errors raised inside it; the edge
    logs them."""
    if database.unavailable(error):
        return app_error_response(database.Unavailable("database"))
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, {"server": ["internal error"]})


class Edge:
    """Every HTTP request: its id (`X-Request-ID`, kept when well formed, else made, returned on
    the response and bound to every log line of the request); `HEAD` answered as `GET` without
    the body; the headers every response carries (OWASP Secure Headers, ASVS 14.4: no sniffing,
    no framing, no referrer; `Cache-Control: no-store` on anything answered to a credentialed
    request or with a token; HSTS over HTTPS when configured; the rate-limit decisions that
    counted the request); bodies over `CONDUIT_HTTP_MAX_BODY_BYTES` refused with a 413; one
    access line and the request's metrics once it is answered; and the handler of last resort
    (`last_resort`), logging the error once (the database's unavailability at most once per
    interval, `conduit.database.report_unavailable`)."""

    def __init__(
        self,
        framework: ASGIApp,
        *,
        settings: Settings,
        fast_reads: FastReads,
    ) -> None:
        self.framework = framework
        self.settings = settings
        self.fast_reads = fast_reads
        # A cross-origin request needs CORS headers: the framework's CORS middleware adds them.
        self.cors = bool(settings.http.cors_origins)
        self.max_body_bytes = settings.http.max_body_bytes
        hsts_seconds = settings.http.hsts_seconds
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains" if hsts_seconds else None
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
        self.access = access_logger() if settings.log.access else None
        self.metrics = settings.metrics.enabled
        self.observers: dict[tuple[str, str, int], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.framework(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        if method == "HEAD":
            # A copy: the server still knows the request as HEAD, and sends no body for it.
            scope = {**scope, "method": "GET"}
        exchange = _Exchange(self, scope, send, head=method == "HEAD")
        tokens = structlog.contextvars.bind_contextvars(request_id=exchange.request_id.decode())
        try:
            await self._answer(scope, receive, exchange)
        except Exception as error:
            path = printable(scope["path"])
            if database.unavailable(error):
                database.report_unavailable(self.settings.database, error)
            else:
                logger.exception("unhandled_error", extra={"method": method, "path": path})
            if not exchange.started:
                await last_resort(Request(scope), error)(scope, receive, exchange.send)
        finally:
            self._answered(scope, method, exchange, time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**tokens)

    async def _answer(self, scope: Scope, receive: Receive, exchange: "_Exchange") -> None:
        if (
            scope["method"] == "GET"
            and not (exchange.credentialed or exchange.has_body)
            and not (exchange.cross_origin and self.cors)
        ):
            response = await _fast_read(self.fast_reads, scope, receive, exchange.state)
            if response is not None:
                await exchange.respond(response)
                return
        declared = exchange.declared_length
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            too_large = error_response(
                HTTP_413_CONTENT_TOO_LARGE, {"request": ["content too large"]}
            )
            await too_large(scope, receive, exchange.send)
            return
        limited = _Limited(receive, self.max_body_bytes) if exchange.has_body else receive
        await self.framework(scope, limited, exchange.send)

    def completed(
        self,
        headers: Headers,
        scope: Scope,
        state: RequestState,
        *,
        request_id: bytes,
        no_store: bool,
    ) -> Headers:
        """The response's headers with the edge's own."""
        path: str = scope["path"]
        hsts = self.hsts if scope["scheme"] == "https" else None
        if no_store or hsts is not None:
            replaced = MutableHeaders(raw=headers)
            if no_store:
                replaced["Cache-Control"] = "no-store"
                replaced["Pragma"] = "no-cache"
            if hsts is not None:
                replaced["Strict-Transport-Security"] = hsts
        fixed = self.api_headers if path.startswith("/api/") else self.other_headers
        headers += [(b"x-request-id", request_id), *fixed]
        if state.decisions:
            headers += rate_limit_headers(state.decisions)
        return headers

    def _answered(self, scope: Scope, method: str, exchange: "_Exchange", duration: float) -> None:
        state = exchange.state
        route = state.route
        if route is None and (matched := scope.get("route")) is not None:
            route = matched.path_format
        status = exchange.status
        if self.metrics:
            key = (method if method in _METHODS else "OTHER", route or "unmatched", status)
            observe = self.observers.get(key)
            if observe is None:
                observe = self.observers[key] = metrics.REQUEST_DURATION.labels(*key).observe
            observe(duration)
        if self.access is not None:
            path: str = scope["path"]
            # Polled every few seconds by platforms and scrapers: at DEBUG.
            log = self.access.debug if path.startswith(_QUIET_PREFIXES) else self.access.info
            # Unmatched: the path asked for instead, as `printable` bounds it.
            unmatched = {} if route is not None else {"path": printable(path)}
            log(
                f"{method} {route or unmatched['path']} {status}",
                request_id=exchange.request_id.decode(),
                method=method,
                route=route,
                **unmatched,
                status=status,
                duration_ms=round(duration * 1000, 2),
                user_id=state.user_id,
                rate_limits=[decision.policy.name for decision in state.decisions] or None,
            )


class _Exchange:
    """One request as the edge sees it: what its headers say, and its response as it goes."""

    __slots__ = (
        "credentialed",
        "cross_origin",
        "declared_length",
        "edge",
        "has_body",
        "head",
        "no_store",
        "request_id",
        "scope",
        "send_to_server",
        "started",
        "state",
        "status",
    )

    def __init__(self, edge: Edge, scope: Scope, send: Send, *, head: bool) -> None:
        self.edge = edge
        self.scope = scope
        self.send_to_server = send
        self.head = head
        self.state = request_state.begin(scope)
        self.status = HTTP_500_INTERNAL_SERVER_ERROR
        self.started = False
        request_id = None
        self.credentialed = self.has_body = self.cross_origin = False
        self.declared_length = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
                request_id = value
            elif name in _CREDENTIALS:
                self.credentialed = True
            elif name in _BODY_HEADERS:
                self.has_body = True
                if name == b"content-length":
                    self.declared_length = value
            elif name == b"origin":
                self.cross_origin = True
        self.request_id: bytes = request_id or os.urandom(16).hex().encode()
        path: str = scope["path"]
        self.no_store = self.credentialed or path.startswith(_SECRET_ANSWERS)

    async def send(self, message: Message) -> None:
        """The framework's `send`: the edge's headers on the response, no body for `HEAD`."""
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            message["headers"] = self.edge.completed(
                list(message.get("headers", ())),
                self.scope,
                self.state,
                request_id=self.request_id,
                no_store=self.no_store,
            )
        elif self.head and message.get("body"):
            message = {**message, "body": b""}
        await self.send_to_server(message)

    async def respond(self, response: Response) -> None:
        """A response made here, its headers complete, in two messages."""
        self.status, self.started = response.status_code, True
        headers = self.edge.completed(
            response.raw_headers,
            self.scope,
            self.state,
            request_id=self.request_id,
            no_store=self.no_store,
        )
        send = self.send_to_server
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if self.head else response.body})


async def _fast_read(
    fast_reads: FastReads, scope: Scope, receive: Receive, state: RequestState
) -> Response | None:
    """A cached read's response, when the request is one the fast path answers."""
    matched = fast_reads.match(scope)
    if matched is None:
        return None
    read, path_params = matched
    try:
        response = await read.respond(Request(scope, receive), path_params)
    except AppError as error:
        response = app_error_response(error)
    if response is not None:
        state.route = read.template
    return response


class _Limited:
    """`receive`, refusing a body that grows past `max_bytes` as it streams in."""

    def __init__(self, receive: Receive, max_bytes: int) -> None:
        self.receive = receive
        self.max_bytes = max_bytes
        self.received = 0

    async def __call__(self) -> Message:
        message = await self.receive()
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            # FastAPI lets an HTTPException from the body stream through to the handlers.
            raise HTTPException(HTTP_413_CONTENT_TOO_LARGE)
        return message
