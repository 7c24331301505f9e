"""Rate limits as a client meets them: which requests count against what, the 429, and the
IETF headers on every response. They run on the app's store: memory, or Redis when
TEST_REDIS_URL is set."""

import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from conduit.config import Rate, RateLimitSettings, Settings
from conduit.main import create_app
from conduit.ratelimit.dependencies import address_partition
from conduit.ratelimit.limiter import RateLimiter
from conduit.ratelimit.policies import Policies
from tests.app_clients import clients_of
from tests.factories import PASSWORD, auth, create_api_key, register

pytestmark = pytest.mark.anyio

Install = Callable[..., RateLimiter]
HOUR = 3600


@pytest.fixture
def limits(app: FastAPI, key_prefix: str) -> Install:
    """Put the app under the policies given (the others keep their defaults), with counts of
    the test's own."""

    def install(**rates: Rate) -> RateLimiter:
        connected = clients_of(app)
        limiter = RateLimiter(
            Policies.from_settings(RateLimitSettings.model_validate(rates)),
            connected.store,
            prefix=key_prefix,
        )
        app.state.clients = replace(connected, rate_limiter=limiter)
        return limiter

    return install


def _rate(quota: int, window_seconds: int = HOUR) -> Rate:
    return Rate(quota=quota, window_seconds=window_seconds)


def _state(response: Response) -> dict[str, tuple[int, int]]:
    """`RateLimit` as {policy: (remaining, seconds to reset)}."""
    return {
        name: (int(remaining), int(reset))
        for name, remaining, reset in re.findall(
            r'"([^"]+)";r=(\d+);t=(\d+)', response.headers["RateLimit"]
        )
    }


def _login(email: str, password: str = PASSWORD) -> dict[str, Any]:
    return {"user": {"email": email, "password": password}}


async def test_anonymous_requests_count_per_address_and_the_next_one_is_refused(
    client: AsyncClient, limits: Install
) -> None:
    limits(anonymous=_rate(3))

    allowed = [await client.get("/api/tags") for _ in range(3)]
    refused = await client.get("/api/articles")

    assert [r.status_code for r in allowed] == [200, 200, 200]
    for response, remaining in zip(allowed, [2, 1, 0], strict=True):
        assert response.headers["RateLimit-Policy"] == '"anonymous";q=3;w=3600'
        assert _state(response)["anonymous"][0] == remaining
        assert 0 < _state(response)["anonymous"][1] <= HOUR
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= HOUR
    assert refused.json() == {
        "errors": {"rate_limit": [f"too many requests, retry in {retry_after} s"]}
    }
    assert refused.headers["RateLimit-Policy"] == '"anonymous";q=3;w=3600'
    assert _state(refused) == {"anonymous": (0, retry_after)}


async def test_every_response_of_a_limited_route_carries_the_headers(
    client: AsyncClient, limits: Install
) -> None:
    limits(anonymous=_rate(10))

    not_found = await client.get("/api/articles/no-such-article")
    invalid = await client.get("/api/articles", params={"limit": "many"})

    assert (not_found.status_code, invalid.status_code) == (404, 422)
    assert _state(not_found)["anonymous"][0] == 9
    assert _state(invalid)["anonymous"][0] == 8


async def test_authenticated_reads_and_writes_count_per_user_each_on_its_own(
    client: AsyncClient, limits: Install
) -> None:
    jake = await register(client, "jake")
    jane = await register(client, "jane")
    limits(reads=_rate(5), writes=_rate(2))

    writes = [
        await client.put("/api/user", headers=auth(jake), json={"user": {"bio": str(n)}})
        for n in range(3)
    ]
    read = await client.get("/api/user", headers=auth(jake))
    other = await client.put("/api/user", headers=auth(jane), json={"user": {"bio": "mine"}})

    assert [r.status_code for r in writes] == [200, 200, 429]
    assert writes[0].headers["RateLimit-Policy"] == '"writes";q=2;w=3600'
    assert (read.status_code, _state(read)["reads"][0]) == (200, 4)
    assert (other.status_code, _state(other)["writes"][0]) == (200, 1)
    # The refused write was not made.
    assert read.json()["user"]["bio"] == "1"


async def test_an_api_key_counts_apart_from_its_owner(client: AsyncClient, limits: Install) -> None:
    jake = await register(client, "jake")
    key = (await create_api_key(client, jake, scopes=["read"]))["key"]
    limits(reads=_rate(1))

    with_key = [await client.get("/api/user", headers={"X-API-Key": key}) for _ in range(2)]
    with_token = await client.get("/api/user", headers=auth(jake))

    assert [r.status_code for r in with_key] == [200, 429]
    assert with_token.status_code == 200


async def test_refused_credentials_count_against_the_address(
    client: AsyncClient, limits: Install
) -> None:
    limits(anonymous=_rate(2))

    guesses = [await client.get("/api/user", headers={"X-API-Key": f"guess-{n}"}) for n in range(3)]
    anonymous = await client.get("/api/tags")

    assert [r.status_code for r in guesses] == [401, 401, 429]
    assert anonymous.status_code == 429


async def test_credential_routes_have_a_tighter_budget_per_address(
    client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(sign_in=_rate(2))

    attempts = [
        await client.post("/api/users/login", json=_login("jake@example.com")),
        await client.post("/api/auth/token", data={"username": "jake", "password": PASSWORD}),
        await client.post("/api/users/login", json=_login("jake@example.com")),
        await client.post("/api/auth/refresh", json={"refresh_token": "x"}),
    ]

    assert [r.status_code for r in attempts] == [200, 200, 429, 429]
    policies = attempts[0].headers["RateLimit-Policy"]
    assert policies == '"sign-in";q=2;w=3600, "anonymous";q=300;w=60'
    assert set(_state(attempts[0])) == {"sign-in", "anonymous"}


async def test_failed_sign_ins_lock_the_login_whatever_the_password(
    client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    await register(client, "jane")
    limits(failed_sign_ins=_rate(3))

    failures = [
        await client.post("/api/users/login", json=_login("jake@example.com", "wrong-1")),
        await client.post(
            "/api/auth/token", data={"username": "jake@example.com", "password": "wrong-2"}
        ),
        await client.post("/api/users/login", json=_login("JAKE@example.com", "wrong-3")),
    ]
    right_password = await client.post("/api/users/login", json=_login("jake@example.com"))
    by_token = await client.post(
        "/api/auth/token", data={"username": "jake@example.com", "password": PASSWORD}
    )
    other_account = await client.post("/api/users/login", json=_login("jane@example.com"))

    assert [r.status_code for r in failures] == [401, 400, 401]
    for locked in (right_password, by_token):
        assert locked.status_code == 429
        retry_after = int(locked.headers["Retry-After"])
        assert 0 < retry_after <= HOUR
        assert locked.json() == {
            "errors": {"rate_limit": [f"too many requests, retry in {retry_after} s"]}
        }
    assert other_account.status_code == 200


async def test_successful_sign_ins_do_not_count(client: AsyncClient, limits: Install) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(1))

    logins = [
        await client.post("/api/users/login", json=_login("jake@example.com")) for _ in range(3)
    ]

    assert [r.status_code for r in logins] == [200, 200, 200]


async def test_an_unknown_login_is_locked_like_a_known_one(
    client: AsyncClient, limits: Install
) -> None:
    limits(failed_sign_ins=_rate(2))

    attempts = [
        await client.post("/api/users/login", json=_login("nobody@example.com", "guess"))
        for _ in range(3)
    ]

    assert [r.status_code for r in attempts] == [401, 401, 429]


async def test_a_locked_account_opens_again_when_the_window_moves_on(
    client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    window = 2
    limits(failed_sign_ins=_rate(1, window_seconds=window), sign_in=_rate(1000))
    # Windows start on the clock's whole seconds: failing at the start of one leaves the next
    # login inside it unless a password hash takes two seconds.
    await anyio.sleep(window - time.time() % window)
    await client.post("/api/users/login", json=_login("jake@example.com", "wrong"))

    statuses = []
    # A sliding window weighs the window before too: the lock ends within two windows.
    for _ in range(10 * (2 * window + 1)):
        response = await client.post("/api/users/login", json=_login("jake@example.com"))
        statuses.append(response.status_code)
        if response.status_code != 429:
            break
        await anyio.sleep(0.1)

    assert statuses[0] == 429
    assert statuses[-1] == 200


@asynccontextmanager
async def _at(app: FastAPI, address: str) -> AsyncIterator[AsyncClient]:
    """A client of `app` (on the test's database, as `client` set it) from `address`."""
    transport = ASGITransport(app=app, client=(address, 5000))
    async with AsyncClient(transport=transport, base_url="http://test") as at:
        yield at


async def test_guesses_lock_the_address_guessing_not_the_owner_elsewhere(
    app: FastAPI, client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(3))

    async with _at(app, "198.51.100.1") as attacker, _at(app, "198.51.100.2") as owner:
        guesses = [
            await attacker.post("/api/users/login", json=_login("jake@example.com", f"guess-{n}"))
            for n in range(4)
        ]
        attacker_right = await attacker.post("/api/users/login", json=_login("jake@example.com"))
        owner_right = await owner.post("/api/users/login", json=_login("jake@example.com"))

    assert [r.status_code for r in guesses] == [401, 401, 401, 429]
    assert attacker_right.status_code == 429
    assert owner_right.status_code == 200


async def test_the_per_account_ceiling_refuses_every_address_once_reached(
    app: FastAPI, client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(3), failed_sign_ins_per_account=_rate(5))

    statuses = []
    for n in range(3):
        async with _at(app, f"198.51.100.{n + 1}") as guesser:
            for _ in range(2):
                response = await guesser.post(
                    "/api/users/login", json=_login("jake@example.com", "guess")
                )
                statuses.append(response.status_code)
    async with _at(app, "203.0.113.9") as owner:
        owner_right = await owner.post("/api/users/login", json=_login("jake@example.com"))

    assert statuses == [401] * 5 + [429]
    assert owner_right.status_code == 429


async def test_a_locked_username_does_not_tell_its_email(
    client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(2))
    for _ in range(2):
        await client.post("/api/auth/token", data={"username": "jake", "password": "guess"})
    locked = await client.post("/api/auth/token", data={"username": "jake", "password": "guess"})

    its_email = await client.post("/api/users/login", json=_login("jake@example.com", "guess"))
    another = await client.post("/api/users/login", json=_login("jane@example.com", "guess"))

    assert locked.status_code == 429
    assert (its_email.status_code, another.status_code) == (401, 401)


async def test_the_refusal_is_the_same_for_a_known_login_and_an_unknown_one(
    app: FastAPI, client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(2))
    jake_email, unknown_email = "jake@example.com", "nobody@example.com"
    async with _at(app, "198.51.100.1") as first, _at(app, "198.51.100.2") as second:
        for _ in range(2):
            await first.post("/api/users/login", json=_login(jake_email, "guess"))
            await second.post("/api/users/login", json=_login(unknown_email, "guess"))
        sent = time.monotonic()
        known = await first.post("/api/users/login", json=_login(jake_email, "guess"))
        unknown = await second.post("/api/users/login", json=_login(unknown_email, "guess"))
        between = time.monotonic() - sent

    assert known.status_code == unknown.status_code == 429
    # Each says how long to wait from its own moment, in whole seconds: the two waits may
    # differ by the time between the refusals, rounded up, and by nothing else.
    waits = [int(response.headers["retry-after"]) for response in (known, unknown)]
    assert abs(waits[0] - waits[1]) <= math.ceil(between)

    def refusal(response: Response) -> tuple[bytes, dict[str, str]]:
        wait = response.headers["retry-after"]
        headers = {
            name: value.replace(wait, "<wait>")
            for name, value in response.headers.items()
            if name != "x-request-id"
        }
        return response.content.replace(f"retry in {wait} s".encode(), b"<wait>"), headers

    assert refusal(known) == refusal(unknown)


async def test_a_successful_sign_in_gives_the_address_its_attempts_back(
    client: AsyncClient, limits: Install
) -> None:
    await register(client, "jake")
    limits(failed_sign_ins=_rate(3))

    async def attempt(password: str) -> int:
        response = await client.post("/api/users/login", json=_login("jake@example.com", password))
        return response.status_code

    statuses = [
        await attempt(password)
        for password in ["guess", "guess", PASSWORD, "guess", "guess", "guess", "guess"]
    ]

    assert statuses == [401, 401, 200, 401, 401, 401, 429]


async def test_password_changes_count_against_sign_in_per_address_and_per_account(
    app: FastAPI, client: AsyncClient, limits: Install
) -> None:
    tokens = {name: await register(client, name) for name in ("jake", "jane", "bob")}
    limits(sign_in=_rate(3))

    async def change(name: str, address: str) -> int:
        async with _at(app, address) as at:
            response = await at.put(
                "/api/user",
                headers=auth(tokens[name]),
                json={"user": {"password": f"new-password-{name}"}},
            )
        return response.status_code

    statuses = [
        await change("jake", "198.51.100.1"),
        await change("jane", "198.51.100.1"),
        await change("jake", "198.51.100.2"),
        await change("jake", "198.51.100.3"),
        # The account's quota is spent, from whatever address.
        await change("jake", "198.51.100.4"),
        await change("jane", "198.51.100.1"),
        # The address's quota is spent, for whatever account.
        await change("bob", "198.51.100.1"),
    ]
    bio = await client.put("/api/user", headers=auth(tokens["jake"]), json={"user": {"bio": "x"}})

    assert statuses == [200, 200, 200, 200, 429, 200, 429]
    assert bio.status_code == 200


def test_an_ipv6_client_is_counted_by_its_64_block() -> None:
    assert address_partition("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_partition("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_partition("::ffff:198.51.100.4") == "198.51.100.4"
    assert address_partition("198.51.100.4") == "198.51.100.4"


@pytest.fixture
async def app_behind_proxy(settings: Settings) -> AsyncIterator[FastAPI]:
    proxied = settings.model_copy(
        update={
            "http": settings.http.model_copy(update={"trusted_proxies": ["127.0.0.1"]}),
            "rate_limit": RateLimitSettings(anonymous=_rate(1)),
        }
    )
    app = create_app(proxied)
    async with app.router.lifespan_context(app):
        yield app


async def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(
    app_behind_proxy: FastAPI,
) -> None:
    transport = ASGITransport(app=app_behind_proxy, client=("127.0.0.1", 5000))
    async with AsyncClient(transport=transport, base_url="http://test") as client:

        def forwarded(address: str) -> dict[str, str]:
            return {"X-Forwarded-For": address}

        first = await client.get("/api/tags", headers=forwarded("198.51.100.1"))
        again = await client.get("/api/tags", headers=forwarded("198.51.100.1"))
        other = await client.get("/api/tags", headers=forwarded("198.51.100.2"))

    assert [first.status_code, again.status_code, other.status_code] == [200, 429, 200]


async def test_an_untrusted_peer_cannot_choose_its_address(app: FastAPI, limits: Install) -> None:
    limits(anonymous=_rate(1))
    transport = ASGITransport(app=app, client=("198.51.100.9", 5000))
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/api/tags", headers={"X-Forwarded-For": "203.0.113.1"})
        second = await client.get("/api/tags", headers={"X-Forwarded-For": "203.0.113.2"})

    assert [first.status_code, second.status_code] == [200, 429]


async def test_a_browser_app_may_read_the_rate_limit_headers(app_with_cors: FastAPI) -> None:
    async with AsyncClient(
        transport=ASGITransport(app=app_with_cors), base_url="http://test"
    ) as client:
        response = await client.get("/api/tags", headers={"Origin": "https://app.example"})

    exposed = {
        name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"RateLimit", "RateLimit-Policy", "Retry-After"} <= exposed
    assert "RateLimit" in response.headers


@pytest.fixture
async def unlimited_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"rate_limit": RateLimitSettings(enabled=False)}))
    async with app.router.lifespan_context(app):
        yield app


async def test_limiting_can_be_turned_off(unlimited_app: FastAPI) -> None:
    async with AsyncClient(
        transport=ASGITransport(app=unlimited_app), base_url="http://test"
    ) as client:
        responses = [
            await client.post("/api/users/login", json=_login("nobody@example.com", "guess"))
            for _ in range(25)
        ]

    assert {r.status_code for r in responses} == {401}
    assert not any("RateLimit" in r.headers for r in responses)


async def test_the_openapi_document_declares_429_on_every_operation(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert operations
    for path, method, operation in operations:
        refused = operation["responses"].get("429")
        assert refused is not None, f"{method.upper()} {path}"
        assert refused["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
        assert set(refused["headers"]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
