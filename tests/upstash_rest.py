"""Upstash's REST protocol in front of a real Redis, for testing the unmodified `upstash-redis`
and `upstash-ratelimit` clients (Upstash's own emulator is not installable from the registries
the tests reach).

What is served is the part of Upstash's documented protocol those clients use: `POST /` with a
command as a JSON array answers `{"result": ...}` or, with status 400, `{"error": "..."}`;
`POST /pipeline` with a JSON array of commands runs them in order, not as a transaction, and
answers status 200 with one `{"result": ...}` or `{"error": "..."}` per command (a command that
fails stops none of the others). `Authorization: Bearer <token>` is required;
`Upstash-Encoding: base64` encodes string results, `OK` excepted, in each command's result.
"""

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import redis.asyncio
from redis.exceptions import RedisError, ResponseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests import threaded

Reply = None | int | str | list["Reply"]


def _encode(reply: object, *, base64_encoded: bool) -> Reply:
    if isinstance(reply, bytes):
        if reply == b"OK" or not base64_encoded:
            return reply.decode()
        return base64.b64encode(reply).decode()
    if isinstance(reply, list):
        return [_encode(item, base64_encoded=base64_encoded) for item in reply]
    if reply is None or isinstance(reply, int):
        return reply
    raise TypeError(f"unexpected reply {reply!r}")


def _upstash_command(command: list[str | int | float]) -> list[str | int | float]:
    """Upstash runs scripts whose first line is `#!lua flags=allow-key-locking`, a flag
    Redis 7.0 refuses; the emulated server accepts it as Upstash does."""
    if str(command[0]).upper() == "EVAL" and str(command[1]).startswith("#!lua"):
        return [command[0], str(command[1]).partition("\n")[2], *command[2:]]
    return command


def upstash_app(redis_url: str, token: str) -> Starlette:
    client: redis.asyncio.Redis | None = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal client
        client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=1.0)
        # Replies as Redis sends them, not as redis-py would turn them into Python values.
        client.response_callbacks.clear()
        yield
        await client.aclose()

    async def run(command: list[str | int | float], *, base64_encoded: bool) -> dict[str, Reply]:
        assert client is not None
        try:
            # redis-py leaves execute_command untyped.
            reply = await client.execute_command(*_upstash_command(command))  # type: ignore[no-untyped-call]
        except ResponseError as error:
            return {"error": str(error)}
        return {"result": _encode(reply, base64_encoded=base64_encoded)}

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    async def single(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        encoded = request.headers.get("upstash-encoding") == "base64"
        try:
            body = await run(await request.json(), base64_encoded=encoded)
        except RedisError as error:
            return JSONResponse({"error": f"ERR {error}"}, status_code=500)
        return JSONResponse(body, status_code=400 if "error" in body else 200)

    async def pipeline(request: Request) -> JSONResponse:
        if not authorized(request):
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        encoded = request.headers.get("upstash-encoding") == "base64"
        try:
            bodies = [
                await run(command, base64_encoded=encoded) for command in await request.json()
            ]
        except RedisError as error:
            return JSONResponse({"error": f"ERR {error}"}, status_code=500)
        return JSONResponse(bodies)

    return Starlette(
        routes=[
            Route("/", single, methods=["POST"]),
            Route("/pipeline", pipeline, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str


@contextmanager
def serving(redis_url: str, token: str) -> Iterator[str]:
    """The emulator on a loopback port, in a thread of this process; yields its URL."""
    with threaded.serving(upstash_app(redis_url, token), "Upstash REST emulator") as url:
        yield url
