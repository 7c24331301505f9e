"""The floor as an ASGI application: routing, the viewer's token, one statement per request."""

import json
import os
from collections.abc import Sequence
from typing import Protocol, cast
from urllib.parse import parse_qsl

import asyncpg
import jwt
from starlette.types import Receive, Scope, Send

from benchmarks.floor import sql

MAX_LIMIT = 100
MAX_OFFSET = 2**31 - 1
POOL_SIZE = 20  # Conduit's default pool: 10 connections, 10 more under load.


class _Pool(Protocol):
    """The part of asyncpg's pool used here (asyncpg ships no type information)."""

    async def fetchval(self, query: str, *args: object) -> str | None: ...

    async def close(self) -> None: ...


class _Rejected(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.status = status
        self.body = json.dumps({"errors": {field: [message]}}).encode()


def _database_url() -> str:
    url = os.environ["DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _viewer(scope: Scope, secret: str) -> int | None:
    headers: Sequence[tuple[bytes, bytes]] = scope["headers"]
    header = next((value for name, value in headers if name == b"authorization"), None)
    if header is None:
        return None
    scheme, _, token = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() not in {"token", "bearer"}:
        raise _Rejected(401, "token", "is invalid")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
        return int(claims["sub"])
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise _Rejected(401, "token", "is invalid") from exc


def _page_arguments(scope: Scope) -> tuple[int, int]:
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    try:
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
    except ValueError as exc:
        raise _Rejected(422, "limit", "must be an integer") from exc
    if not (1 <= limit <= MAX_LIMIT and 0 <= offset <= MAX_OFFSET):
        raise _Rejected(422, "limit", "is out of range")
    return limit, offset


class Floor:
    _pool: _Pool
    _secret: str

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            try:
                status, body = 200, await self._respond(scope)
            except _Rejected as rejected:
                status, body = rejected.status, rejected.body
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._secret = os.environ["CONDUIT_SECRET_KEY"]
                pool = await asyncpg.create_pool(_database_url(), min_size=1, max_size=POOL_SIZE)
                self._pool = cast(_Pool, pool)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _fetch(self, query: str, *args: object) -> bytes:
        body = await self._pool.fetchval(query, *args)
        if body is None:
            raise _Rejected(404, "article", "not found")
        return body.encode()

    async def _respond(self, scope: Scope) -> bytes:
        if scope["method"] != "GET":
            raise _Rejected(405, "request", "method not allowed")
        parts = scope["path"].strip("/").split("/")
        match parts:
            case ["api", "tags"]:
                return await self._fetch(sql.TAGS)
            case ["api", "articles"]:
                viewer = _viewer(scope, self._secret)
                return await self._fetch(sql.LIST, *_page_arguments(scope), viewer)
            case ["api", "articles", "feed"]:
                viewer = _viewer(scope, self._secret)
                if viewer is None:
                    raise _Rejected(401, "token", "is missing")
                return await self._fetch(sql.FEED, *_page_arguments(scope), viewer)
            case ["api", "articles", slug]:
                return await self._fetch(sql.ARTICLE, slug, _viewer(scope, self._secret))
            case ["api", "articles", slug, "comments"]:
                return await self._fetch(sql.COMMENTS, slug, _viewer(scope, self._secret))
        raise _Rejected(404, "request", "not found")


app = Floor()
