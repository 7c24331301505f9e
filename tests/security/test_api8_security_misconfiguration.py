"""API8:2023 Security Misconfiguration: safe defaults, hardened headers, no internals leaked,
and configuration that refuses unsafe values."""

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr, ValidationError

from conduit.config import AuthSettings, DatabaseSettings, Environment, HttpSettings, Settings
from conduit.main import create_app
from tests.factories import PASSWORD, auth, oauth_tokens, register

pytestmark = pytest.mark.anyio

STRONG_SECRET = SecretStr("a-production-secret-of-at-least-32-bytes")
# Production needs it named; these apps are never started, so it is never opened.
NAMED_DATABASE = DatabaseSettings(url="sqlite:///./conduit.db")


def _client(app: FastAPI) -> AsyncClient:
    return AsyncClient(transport=ASGITransport(app=app), base_url="http://test")


async def test_security_headers_on_every_response(client: AsyncClient) -> None:
    for response in (await client.get("/api/tags"), await client.get("/api/nothing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )
        assert "Strict-Transport-Security" not in response.headers


async def test_authenticated_responses_are_not_stored(client: AsyncClient) -> None:
    token = await register(client, "alice")

    authenticated = await client.get("/api/articles", headers=auth(token))
    anonymous = await client.get("/api/articles")

    assert authenticated.headers["Cache-Control"] == "no-store"
    # Stored, by a browser or a shared proxy, only to be revalidated by its ETag.
    assert anonymous.headers["Cache-Control"] == "no-cache"


async def test_responses_that_carry_a_token_are_never_stored(client: AsyncClient) -> None:
    """RFC 6749 section 5.1: every response with a token or a secret in it, to a request with
    credentials or without."""
    registered = await client.post(
        "/api/users",
        json={"user": {"username": "keeper", "email": "keeper@example.com", "password": PASSWORD}},
    )
    token = registered.json()["user"]["token"]
    login = {"user": {"email": "keeper@example.com", "password": PASSWORD}}
    tokens = await oauth_tokens(client, "keeper@example.com")
    answers = {
        "register": registered,
        "login": await client.post("/api/users/login", json=login),
        "token": await client.post(
            "/api/auth/token", data={"username": "keeper", "password": PASSWORD}
        ),
        "refresh": await client.post(
            "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ),
        "current user": await client.get("/api/user", headers=auth(token)),
        "update user": await client.put(
            "/api/user", headers=auth(token), json={"user": {"bio": "kept"}}
        ),
        "api key": await client.post(
            "/api/user/api-keys",
            headers=auth(token),
            json={"apiKey": {"name": "ci", "scopes": ["read"]}},
        ),
    }

    for name, response in answers.items():
        assert response.is_success, (name, response.text)
        assert response.headers["Cache-Control"] == "no-store", name
        assert response.headers["Pragma"] == "no-cache", name


async def test_hsts_over_https_from_a_trusted_proxy_only() -> None:
    settings = Settings(http=HttpSettings(hsts_seconds=31536000, trusted_proxies=["127.0.0.1"]))
    untrusted = Settings(http=HttpSettings(hsts_seconds=31536000))

    async with _client(create_app(settings)) as client:
        via_proxy = await client.get("/api/nothing", headers={"X-Forwarded-Proto": "https"})
        plain = await client.get("/api/nothing")
    async with _client(create_app(untrusted)) as client:
        spoofed = await client.get("/api/nothing", headers={"X-Forwarded-Proto": "https"})

    assert via_proxy.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in plain.headers
    assert "Strict-Transport-Security" not in spoofed.headers


async def test_docs_are_off_in_production_unless_enabled() -> None:
    production = Settings(
        env=Environment.PRODUCTION,
        auth=AuthSettings(secret_key=STRONG_SECRET),
        database=NAMED_DATABASE,
    )
    enabled = Settings(
        env=Environment.PRODUCTION,
        auth=AuthSettings(secret_key=STRONG_SECRET),
        database=NAMED_DATABASE,
        http=HttpSettings(docs_enabled=True),
    )

    async with _client(create_app(production)) as client:
        hidden = [await client.get(path) for path in ("/docs", "/redoc", "/openapi.json")]
    async with _client(create_app(enabled)) as client:
        shown = [await client.get(path) for path in ("/docs", "/openapi.json")]

    assert [response.status_code for response in hidden] == [404, 404, 404]
    assert [response.status_code for response in shown] == [200, 200]


def test_wildcard_cors_is_refused() -> None:
    with pytest.raises(ValidationError, match="list the allowed origins explicitly"):
        HttpSettings(cors_origins=["*"])


async def test_cors_never_allows_credentials() -> None:
    app = create_app(Settings(http=HttpSettings(cors_origins=["https://app.example"])))

    async with _client(app) as client:
        response = await client.options(
            "/api/user",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-credentials" not in response.headers


async def test_errors_carry_no_internals(client: AsyncClient) -> None:
    responses = [
        await client.get("/api/articles?limit=abc"),
        await client.post(
            "/api/users", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        await client.get("/api/articles/feed", headers={"Authorization": "Token x.y.z"}),
    ]

    for response in responses:
        assert set(response.json()) == {"errors"}
        assert "Traceback" not in response.text
        assert "sqlalchemy" not in response.text.lower()
