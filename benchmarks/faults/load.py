"""The clients of a fault scenario: how many readers and writers, for how long (`Shape`),
sending requests one after another without pause, each request's outcome recorded (`Load`)."""

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

# Longer than any bound Conduit puts on a request: a client that waits this long saw a hang.
REQUEST_TIMEOUT_SECONDS = 30.0

Kind = Literal["read", "write"]


@dataclass(frozen=True, slots=True)
class Shape:
    """How a scenario loads Conduit and for how long."""

    title: str
    readers: int
    writers: int
    before_seconds: float
    fault_seconds: float
    after_seconds: float
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    started: float
    finished: float
    status: int | None = None
    # A 503 in the API's error shape with `Retry-After`.
    well_formed: bool = True
    # What happened instead of a response: "no response" (closed or reset), "refused",
    # "timeout".
    failure: str | None = None
    title: str | None = None


def _failure(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.ConnectError):
        return "refused"
    return "no response"


def _well_formed(response: httpx.Response) -> bool:
    if response.status_code != httpx.codes.SERVICE_UNAVAILABLE:
        return True
    try:
        body = response.json()
    except json.JSONDecodeError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, dict) and bool(errors) and "retry-after" in response.headers


@dataclass
class Load:
    """Readers and writers sending requests one after another, without pause, until stopped."""

    base_url: str
    token: str
    slug: str
    readers: int
    writers: int
    outcomes: list[Outcome] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self._read(number)) for number in range(self.readers)]
        tasks += [asyncio.create_task(self._write(number)) for number in range(self.writers)]
        try:
            yield
        finally:
            self._stopping.set()
            await asyncio.gather(*tasks)

    async def _send(
        self, client: httpx.AsyncClient, kind: Kind, request: httpx.Request, title: str | None
    ) -> None:
        started = time.monotonic()
        try:
            response = await client.send(request)
        except httpx.TransportError as error:
            outcome = Outcome(kind, started, time.monotonic(), failure=_failure(error), title=title)
        else:
            outcome = Outcome(
                kind,
                started,
                time.monotonic(),
                status=response.status_code,
                well_formed=_well_formed(response),
                title=title,
            )
        self.outcomes.append(outcome)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False
        )

    async def _read(self, number: int) -> None:
        paths = ("/api/articles?limit=10", f"/api/articles/{self.slug}", "/api/tags")
        async with self._client() as client:
            for path in itertools.islice(itertools.cycle(paths), number, None):
                if self._stopping.is_set():
                    return
                await self._send(client, "read", client.build_request("GET", path), None)

    async def _write(self, number: int) -> None:
        headers = {"Authorization": f"Token {self.token}"}
        async with self._client() as client:
            for sequence in itertools.count():
                if self._stopping.is_set():
                    return
                title = f"fault {number} {sequence}"
                article = {"title": title, "description": "d", "body": "b", "tagList": ["fault"]}
                request = client.build_request(
                    "POST", "/api/articles", json={"article": article}, headers=headers
                )
                await self._send(client, "write", request, title)
