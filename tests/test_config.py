import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import ValidationError

from conduit.config import DatabaseSettings, Environment, Settings
from conduit.main import create_app


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/conduit", "postgresql+asyncpg://u:p@db:5432/conduit"),
        ("postgresql://u:p@db/conduit", "postgresql+asyncpg://u:p@db/conduit"),
        ("postgresql+asyncpg://u@db/conduit", "postgresql+asyncpg://u@db/conduit"),
        ("sqlite:///./conduit.db", "sqlite+aiosqlite:///./conduit.db"),
    ],
)
def test_database_url_uses_async_drivers(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)

    assert DatabaseSettings().url == expected


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"])
def test_in_memory_sqlite_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Reads and writes use connections of their own: each would see its own empty database."""
    monkeypatch.setenv("DATABASE_URL", url)

    with pytest.raises(ValidationError, match="SQLite needs a file"):
        DatabaseSettings()


def test_defaults_to_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = DatabaseSettings()

    assert settings.url == "sqlite+aiosqlite:///./conduit.db"
    assert settings.is_sqlite


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.delenv("CONDUIT_SECRET_KEY", raising=False)

    with pytest.raises(ValidationError, match="CONDUIT_SECRET_KEY must be set in production"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONDUIT_SECRET_KEY", "too-short"),
        ("CONDUIT_AUTH_PREVIOUS_SECRET_KEYS", f"{'k' * 32},too-short"),
    ],
)
def test_keys_shorter_than_256_bits_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match="signing keys must have at least 32 bytes"):
        Settings()


def test_production_accepts_a_strong_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_SECRET_KEY", "s" * 32)

    assert Settings().env is Environment.PRODUCTION


def test_cors_origins_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_HTTP_CORS_ORIGINS", "https://a.example, https://b.example")

    assert Settings().http.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.anyio
async def test_cors_allows_only_listed_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_HTTP_CORS_ORIGINS", "https://app.example")
    app: FastAPI = create_app(Settings())

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        allowed = await client.options(
            "/api/tags",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
        )
        refused = await client.options(
            "/api/tags",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )

    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers
