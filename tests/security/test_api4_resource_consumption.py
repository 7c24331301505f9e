"""API4:2023 Unrestricted Resource Consumption: every input is bounded, and expensive work is
bounded too."""

import threading
import time

import anyio
import pytest
from httpx import AsyncClient

from conduit.auth import passwords
from conduit.config import Settings
from tests.factories import auth, create_article, register

pytestmark = pytest.mark.anyio


async def test_request_body_size_is_capped(client: AsyncClient, settings: Settings) -> None:
    token = await register(client, "alice")

    response = await client.post(
        "/api/articles",
        headers=auth(token),
        content=b"x" * (settings.http.max_body_bytes + 1),
    )

    assert response.status_code == 413


async def test_page_size_is_capped(client: AsyncClient) -> None:
    assert (await client.get("/api/articles?limit=1000")).status_code == 422
    assert (await client.get("/api/articles?offset=99999999999999")).status_code == 422


async def test_passwords_are_bounded_before_hashing(client: AsyncClient) -> None:
    response = await client.post(
        "/api/users",
        json={"user": {"username": "a", "email": "a@example.com", "password": "p" * 257}},
    )

    assert response.status_code == 422
    assert response.json() == {"errors": {"password": ["is too long (maximum is 256 characters)"]}}


async def test_tags_and_texts_are_bounded(client: AsyncClient) -> None:
    token = await register(client, "alice")
    slug = (await create_article(client, token))["slug"]

    many_tags = await client.put(
        f"/api/articles/{slug}",
        headers=auth(token),
        json={"article": {"tagList": [f"t{n}" for n in range(11)]}},
    )
    huge_comment = await client.post(
        f"/api/articles/{slug}/comments",
        headers=auth(token),
        json={"comment": {"body": "c" * 10_001}},
    )

    assert many_tags.status_code == huge_comment.status_code == 422


class _ConcurrencyProbe:
    """Stands in for argon2's hasher and records how many threads hash at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self.peak = 0

    def hash(self, password: str) -> str:
        with self._lock:
            self._running += 1
            self.peak = max(self.peak, self._running)
        time.sleep(0.05)
        with self._lock:
            self._running -= 1
        return password


async def test_password_hashing_runs_on_a_bounded_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = _ConcurrencyProbe()
    monkeypatch.setattr(passwords, "_hasher", probe)
    hasher = passwords.PasswordHasher(concurrency=2)

    async with anyio.create_task_group() as group:
        for number in range(6):
            group.start_soon(hasher.hash, f"password-{number}")

    assert probe.peak == 2
