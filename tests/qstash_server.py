"""QStash's publishing and delivery protocol, served in-process for testing the unmodified
`qstash` client (Upstash's QStash dev server is not installable from the registries the tests
reach).

What is served is the part of QStash's documented protocol that client uses to publish:
`POST /v2/publish/<destination url>` with the message as the body answers
`{"messageId": "msg_..."}` with status 201; a repeated `Upstash-Deduplication-Id` (or, with
`Upstash-Content-Based-Deduplication: true`, a repeated destination, body, content type and
forwarded headers) answers the first message's id with `"deduplicated": true` and status 202,
and is not delivered again. `Upstash-Retries` (3 unless given), `Upstash-Delay` (`10s`, `5m`,
`2h`, `1d` or bare seconds), `Upstash-Not-Before`, `Upstash-Method` (POST unless given) and
`Content-Type` are honoured, and each `Upstash-Forward-<name>` header reaches the destination
as `<name>`.
`POST /v2/schedules/<destination url>` records a schedule (`Upstash-Cron`, and
`Upstash-Schedule-Id` to name or replace one) and answers `{"scheduleId": ...}`;
`DELETE /v2/schedules/<id>` removes it. Crons never fire on their own: a test fires a schedule
with `QStash.fire`. `Authorization: Bearer <token>` is required.

A message is delivered from a background task after its delay, signed as QStash signs it:
`Upstash-Signature` is an HS256 JWT from the current signing key whose subject is the
destination URL and whose `body` claim is the unpadded base64url SHA-256 of the body, next to
`Upstash-Message-Id` and `Upstash-Retried`. An answer outside 2xx, or no answer, is retried
`Upstash-Retries` times, after a backoff that doubles from `backoff` seconds; then the message
goes to the dead letters.
"""

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import anyio
import httpx
import jwt
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests import threaded

DEFAULT_RETRIES = 3
FORWARD_PREFIX = "upstash-forward-"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def sign(key: str, url: str, body: bytes, *, now: int | None = None, ttl: int = 300) -> str:
    """An `Upstash-Signature` for `body` sent to `url`, as QStash makes it with `key`."""
    issued = int(time.time()) if now is None else now
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": issued + ttl,
        "nbf": issued,
        "iat": issued,
        "jti": f"jwt_{secrets.token_hex(16)}",
        "body": digest,
    }
    return jwt.encode(claims, key, algorithm="HS256")


@dataclass(frozen=True)
class Message:
    message_id: str
    url: str
    body: bytes
    method: str
    headers: Mapping[str, str]
    retries: int
    delay: float
    schedule_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver a message; `status` is None when the destination did not answer."""

    message_id: str
    url: str
    status: int | None
    retried: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Schedule:
    schedule_id: str
    destination: str
    cron: str
    body: bytes
    method: str
    headers: Mapping[str, str]
    retries: int
    delay: float


class _Broker:
    """The server's state. The server's event loop changes it; tests read it from their own
    thread, so every access holds the lock."""

    def __init__(self, token: str, signing_key: str, backoff: float) -> None:
        self.token = token
        self.signing_key = signing_key
        self.backoff = backoff
        self.lock = threading.Lock()
        self.published: list[str] = []
        self.deliveries: list[Delivery] = []
        self.dead_letters: list[Message] = []
        self.schedules: dict[str, Schedule] = {}
        self.settled = 0
        self._deduplicated: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=10) as self._client:
            try:
                yield
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    def accept(self, message: Message, deduplication_id: str | None) -> tuple[str, bool]:
        """The id the message is known by, and whether an earlier one already had it."""
        with self.lock:
            if deduplication_id is not None:
                original = self._deduplicated.get(deduplication_id)
                if original is not None:
                    return original, True
                self._deduplicated[deduplication_id] = message.message_id
            self.published.append(message.message_id)
        self.spawn(message)
        return message.message_id, False

    def fire(self, schedule_id: str) -> str:
        with self.lock:
            schedule = self.schedules[schedule_id]
            message = Message(
                message_id=_new_id("msg"),
                url=schedule.destination,
                body=schedule.body,
                method=schedule.method,
                headers=schedule.headers,
                retries=schedule.retries,
                delay=schedule.delay,
                schedule_id=schedule_id,
            )
            self.published.append(message.message_id)
        if self._loop is None:
            raise RuntimeError("the QStash emulator is not running")
        self._loop.call_soon_threadsafe(self.spawn, message)
        return message.message_id

    def spawn(self, message: Message) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: Message) -> None:
        await asyncio.sleep(message.delay)
        for retried in range(message.retries + 1):
            if retried:
                await asyncio.sleep(self.backoff * 2 ** (retried - 1))
            delivery = await self._attempt(message, retried)
            with self.lock:
                self.deliveries.append(delivery)
                if delivery.ok:
                    self.settled += 1
                    return
        with self.lock:
            self.dead_letters.append(message)
            self.settled += 1

    async def _attempt(self, message: Message, retried: int) -> Delivery:
        assert self._client is not None
        headers = {
            **message.headers,
            "User-Agent": "Upstash-QStash",
            "Upstash-Message-Id": message.message_id,
            "Upstash-Retried": str(retried),
            "Upstash-Signature": sign(self.signing_key, message.url, message.body),
        }
        if message.schedule_id is not None:
            headers["Upstash-Schedule-Id"] = message.schedule_id
        try:
            response = await self._client.request(
                message.method, message.url, content=message.body, headers=headers
            )
        except httpx.HTTPError:
            status = None
        else:
            status = response.status_code
        return Delivery(message.message_id, message.url, status, retried, message.body)


def _new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(18)}"


def _seconds(duration: str) -> float:
    amount, unit = (duration[:-1], duration[-1]) if duration[-1:].isalpha() else (duration, "s")
    if unit not in DURATION_UNITS or not amount.isdigit():
        raise ValueError(f"invalid duration {duration!r}")
    return int(amount) * DURATION_UNITS[unit]


def _destination(request: Request, prefix: str) -> str:
    """The destination URL as the client wrote it into the path, with the query string."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    destination = path.removeprefix(prefix)
    if request.url.query:
        destination = f"{destination}?{request.url.query}"
    if not destination.startswith(("http://", "https://")):
        raise ValueError(f"invalid destination {destination!r}")
    return destination


def _content_hash(destination: str, headers: Mapping[str, str], body: bytes) -> str:
    digest = hashlib.sha256(destination.encode())
    for name, value in sorted(headers.items()):
        digest.update(f"\n{name.lower()}: {value}".encode())
    digest.update(b"\n\n" + body)
    return digest.hexdigest()


def _message_settings(headers: Headers) -> tuple[str, dict[str, str], int, float]:
    """The method, the headers to deliver, the retries and the delay a request asks for."""
    delivered = {
        name.removeprefix(FORWARD_PREFIX): value
        for name, value in headers.items()
        if name.startswith(FORWARD_PREFIX)
    }
    if "content-type" in headers:
        delivered["Content-Type"] = headers["content-type"]
    retries = int(headers.get("upstash-retries", DEFAULT_RETRIES))
    delay = _seconds(headers["upstash-delay"]) if "upstash-delay" in headers else 0.0
    if "upstash-not-before" in headers:
        delay = max(delay, int(headers["upstash-not-before"]) - time.time())
    return headers.get("upstash-method", "POST").upper(), delivered, retries, delay


def qstash_app(broker: _Broker) -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with broker.running():
            yield

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {broker.token}"

    def unauthorized() -> JSONResponse:
        return JSONResponse({"error": "Unauthorized"}, status_code=401)

    def bad_request(error: ValueError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    async def publish(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        body = await request.body()
        try:
            destination = _destination(request, "/v2/publish/")
            method, headers, retries, delay = _message_settings(request.headers)
        except ValueError as error:
            return bad_request(error)
        deduplication_id = request.headers.get("upstash-deduplication-id")
        content_based = request.headers.get("upstash-content-based-deduplication", "")
        if deduplication_id is None and content_based.lower() == "true":
            deduplication_id = _content_hash(destination, headers, body)
        message = Message(_new_id("msg"), destination, body, method, headers, retries, delay)
        message_id, deduplicated = broker.accept(message, deduplication_id)
        if deduplicated:
            return JSONResponse({"messageId": message_id, "deduplicated": True}, status_code=202)
        return JSONResponse({"messageId": message_id}, status_code=201)

    async def create_schedule(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        if "upstash-cron" not in request.headers:
            return JSONResponse({"error": "Upstash-Cron header is required"}, status_code=400)
        body = await request.body()
        try:
            destination = _destination(request, "/v2/schedules/")
            method, headers, retries, delay = _message_settings(request.headers)
        except ValueError as error:
            return bad_request(error)
        schedule = Schedule(
            schedule_id=request.headers.get("upstash-schedule-id") or _new_id("scd"),
            destination=destination,
            cron=request.headers["upstash-cron"],
            body=body,
            method=method,
            headers=headers,
            retries=retries,
            delay=delay,
        )
        with broker.lock:
            broker.schedules[schedule.schedule_id] = schedule
        return JSONResponse({"scheduleId": schedule.schedule_id}, status_code=201)

    async def delete_schedule(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        with broker.lock:
            broker.schedules.pop(request.path_params["schedule_id"], None)
        return Response()

    return Starlette(
        routes=[
            Route("/v2/publish/{destination:path}", publish, methods=["POST"]),
            Route("/v2/schedules/{destination:path}", create_schedule, methods=["POST"]),
            Route("/v2/schedules/{schedule_id}", delete_schedule, methods=["DELETE"]),
        ],
        lifespan=lifespan,
    )


@dataclass(frozen=True)
class QStash:
    """A running emulator: pass `url` as the client's `base_url` (or QSTASH_URL) with `token`.

    The lists are copies taken when read; the server keeps adding to its own from its thread."""

    url: str
    token: str
    current_signing_key: str
    next_signing_key: str
    _broker: _Broker = field(repr=False)

    @property
    def published(self) -> list[str]:
        """The ids of the messages accepted for delivery, deduplicated ones not repeated."""
        with self._broker.lock:
            return list(self._broker.published)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every attempt to deliver, in the order they were answered."""
        with self._broker.lock:
            return list(self._broker.deliveries)

    @property
    def dead_letters(self) -> list[Message]:
        with self._broker.lock:
            return list(self._broker.dead_letters)

    @property
    def schedules(self) -> dict[str, Schedule]:
        with self._broker.lock:
            return dict(self._broker.schedules)

    def fire(self, schedule_id: str) -> str:
        """Delivers the schedule's message once, now (after its delay); answers its id."""
        return self._broker.fire(schedule_id)

    async def wait_delivered(
        self,
        message_count: int,
        timeout: float = 10,  # noqa: ASYNC109 - its TimeoutError says how far delivery got
    ) -> list[Delivery]:
        """Waits until `message_count` messages are done with, delivered or dead-lettered, and
        answers every delivery attempt so far."""
        deadline = time.monotonic() + timeout
        while True:
            with self._broker.lock:
                if self._broker.settled >= message_count:
                    return list(self._broker.deliveries)
                settled = self._broker.settled
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{settled} of {message_count} messages were done with in {timeout} s"
                )
            await anyio.sleep(0.01)


@contextmanager
def serving(
    token: str, current_signing_key: str, next_signing_key: str, *, backoff: float = 0.2
) -> Iterator[QStash]:
    """The emulator on a loopback port, in a thread of this process."""
    broker = _Broker(token, current_signing_key, backoff)
    with threaded.serving(qstash_app(broker), "QStash emulator") as url:
        yield QStash(url, token, current_signing_key, next_signing_key, broker)
