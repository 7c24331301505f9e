from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.status import HTTP_413_CONTENT_TOO_LARGE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conduit.errors import error_response


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


class SecurityHeadersMiddleware:
    """Headers every response carries (OWASP Secure Headers, ASVS 14.4): no sniffing, no
    framing, no referrer; `no-store` on anything answered to a credentialed request; HSTS over
    HTTPS when configured."""

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
        no_store = credentialed or path.startswith("/api/auth/")
        hsts = self.hsts if scope["scheme"] == "https" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fixed]
                if no_store or hsts is not None:
                    headers = MutableHeaders(scope=message)
                    if no_store:
                        headers["Cache-Control"] = "no-store"
                    if hsts is not None:
                        headers["Strict-Transport-Security"] = hsts
            await send(message)

        await self.app(scope, receive, send_with_headers)
