import logging

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import SecretStr, ValidationError

from conduit.config import (
    Algorithm,
    DatabaseSettings,
    Environment,
    JobsBackend,
    JobsSettings,
    QStashSettings,
    RateLimitSettings,
    RedisSettings,
    Settings,
    SmtpSettings,
)
from conduit.main import create_app
from conduit.ratelimit.policies import Policies

# Settings and apps of the tests' own making: the same whichever database the run tests.
pytestmark = pytest.mark.one_pass


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


def test_replicas_and_the_direct_url_are_postgresql_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@pgbouncer:6432/conduit")
    monkeypatch.setenv("DATABASE_DIRECT_URL", "postgres://u:p@db:5432/conduit")
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "postgres://u:p@r1/conduit, postgresql://u@r2/c")

    settings = DatabaseSettings()

    assert settings.replica_dsns == ["postgresql://u:p@r1/conduit", "postgresql://u@r2/c"]
    assert settings.direct_asyncpg_dsn == "postgresql://u:p@db:5432/conduit"
    assert settings.asyncpg_dsn == "postgresql://u:p@pgbouncer:6432/conduit"


def test_without_a_direct_url_sessions_of_their_own_go_to_the_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db:5432/conduit")
    monkeypatch.delenv("DATABASE_DIRECT_URL", raising=False)

    assert DatabaseSettings().direct_asyncpg_dsn == "postgresql://u:p@db:5432/conduit"


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("DATABASE_REPLICA_URLS", "are streaming replicas of PostgreSQL"),
        ("DATABASE_DIRECT_URL", "is the PostgreSQL behind the pooler"),
    ],
)
def test_a_replica_or_direct_url_that_is_not_postgresql_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    monkeypatch.setenv(variable, "sqlite:///./replica.db")

    with pytest.raises(ValidationError, match=message):
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
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/conduit")

    assert Settings().env is Environment.PRODUCTION


def test_production_refuses_the_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DATABASE_URL a production process would keep its data in a SQLite file in the
    directory it happens to start in."""
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_SECRET_KEY", "s" * 32)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    with pytest.raises(ValidationError, match="DATABASE_URL must be set in production"):
        Settings()


@pytest.mark.parametrize("url", ["sqlite:////data/conduit.db", "sqlite+aiosqlite:///./conduit.db"])
def test_production_accepts_sqlite_named_explicitly(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("CONDUIT_ENV", "production")
    monkeypatch.setenv("CONDUIT_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("DATABASE_URL", url)

    assert Settings().database.is_sqlite


def test_cors_origins_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_HTTP_CORS_ORIGINS", "https://a.example, https://b.example")

    assert Settings().http.cors_origins == ["https://a.example", "https://b.example"]


def test_trusted_proxies_are_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_HTTP_TRUSTED_PROXIES", "10.0.1.0/24, 192.0.2.7,::1")

    assert Settings().http.trusted_proxies == ["10.0.1.0/24", "192.0.2.7", "::1"]


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        ("*", "'\\*' would believe any client's X-Forwarded-For"),
        ("10.0.1.0/33", "'10.0.1.0/33' is not an IP address or network"),
        ("10.0.1.0/24,frontend.internal", "'frontend.internal' is not an IP address or network"),
    ],
)
def test_trusted_proxies_that_would_believe_everyone_or_no_one_are_refused(
    monkeypatch: pytest.MonkeyPatch, proxies: str, message: str
) -> None:
    monkeypatch.setenv("CONDUIT_HTTP_TRUSTED_PROXIES", proxies)

    with pytest.raises(ValidationError, match=message):
        Settings()


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


def test_a_policy_set_in_part_keeps_its_other_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA", "50")
    monkeypatch.setenv("CONDUIT_RATE_LIMIT_READS__ALGORITHM", "token-bucket")
    monkeypatch.setenv("CONDUIT_RATE_LIMIT_ALGORITHM", "fixed-window")

    settings = RateLimitSettings()
    policies = Policies.from_settings(settings)

    assert (settings.sign_in.quota, settings.sign_in.window_seconds) == (50, 60)
    assert policies.sign_in.algorithm is Algorithm.FIXED_WINDOW
    assert policies.reads.algorithm is Algorithm.TOKEN_BUCKET
    assert (policies.failed_sign_ins.quota, policies.failed_sign_ins.window_seconds) == (10, 900)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONDUIT_RATE_LIMIT_WRITES__QUOTA", "0", "greater than or equal to 1"),
        ("CONDUIT_RATE_LIMIT_WRITES__WINDOW_SECONDS", "-1", "greater than or equal to 1"),
        ("CONDUIT_RATE_LIMIT_WRITES__ALGORITHM", "leaky-bucket", "sliding-window"),
        ("CONDUIT_RATE_LIMIT_WRITES__BURST", "5", "Extra inputs are not permitted"),
    ],
)
def test_a_policy_out_of_range_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=message):
        RateLimitSettings()


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"REDIS_URL": "http://cache:6379"}, "must start with redis://, rediss:// or unix://"),
        (
            {"REDIS_URL": "redis://cache:6379/0?health_check_interval=10"},
            "options not supported: health_check_interval",
        ),
        ({"UPSTASH_REDIS_REST_URL": "ftp://x", "UPSTASH_REDIS_REST_TOKEN": "t"}, "http"),
        ({"UPSTASH_REDIS_REST_URL": "https://x.upstash.io"}, "set UPSTASH_REDIS_REST_URL and"),
        ({"UPSTASH_REDIS_REST_TOKEN": "t"}, "set UPSTASH_REDIS_REST_URL and"),
    ],
)
def test_a_store_misconfigured_is_refused(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name in ("REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=message):
        RedisSettings()


@pytest.mark.anyio
async def test_a_production_process_without_a_shared_store_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    alone = RedisSettings(url=None, rest_url=None, rest_token=None)
    production = settings.model_copy(update={"env": Environment.PRODUCTION, "redis": alone})
    app = create_app(production)

    with caplog.at_level(logging.WARNING, logger="conduit.main"):
        async with app.router.lifespan_context(app):
            pass

    assert [r.msg for r in caplog.records] == ["no_shared_store"]


@pytest.mark.anyio
async def test_a_production_process_without_an_smtp_server_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    production = settings.model_copy(update={"env": Environment.PRODUCTION, "smtp": SmtpSettings()})
    app = create_app(production)

    with caplog.at_level(logging.WARNING, logger="conduit.main"):
        async with app.router.lifespan_context(app):
            pass

    assert "no_smtp_server" in [r.msg for r in caplog.records]


_QSTASH = QStashSettings(
    token=SecretStr("token"),
    current_signing_key=SecretStr("current"),
    next_signing_key=SecretStr("next"),
)
_SQLITE = DatabaseSettings(url="sqlite:///./conduit.db")
_POSTGRES = DatabaseSettings(url="postgresql://db/conduit")


@pytest.mark.parametrize(
    ("database", "qstash", "expected"),
    [
        (_SQLITE, QStashSettings(), JobsBackend.EMBEDDED),
        (_POSTGRES, QStashSettings(), JobsBackend.PGQUEUER),
        (_POSTGRES, _QSTASH, JobsBackend.QSTASH),
    ],
)
def test_the_jobs_backend_follows_from_the_configuration(
    database: DatabaseSettings, qstash: QStashSettings, expected: JobsBackend
) -> None:
    jobs = JobsSettings(qstash_callback_url="https://api.example.com/jobs/qstash")
    settings = Settings(database=database, qstash=qstash, jobs=jobs)
    assert settings.jobs_backend is expected


@pytest.mark.parametrize(
    ("database", "jobs", "qstash", "message"),
    [
        (_SQLITE, JobsSettings(backend=JobsBackend.PGQUEUER), QStashSettings(), "needs PostgreSQL"),
        (_POSTGRES, JobsSettings(backend=JobsBackend.EMBEDDED), QStashSettings(), "SQLite only"),
        (
            _SQLITE,
            JobsSettings(backend=JobsBackend.QSTASH),
            QStashSettings(token=SecretStr("token")),
            "QSTASH_CURRENT_SIGNING_KEY",
        ),
        (_SQLITE, JobsSettings(), _QSTASH, "CONDUIT_JOBS_QSTASH_CALLBACK_URL"),
    ],
)
def test_a_jobs_backend_that_cannot_run_is_refused(
    database: DatabaseSettings, jobs: JobsSettings, qstash: QStashSettings, message: str
) -> None:

    with pytest.raises(ValidationError, match=message):
        Settings(database=database, jobs=jobs, qstash=qstash)


def test_smtp_takes_one_tls_mode() -> None:
    with pytest.raises(ValidationError, match="not both"):
        SmtpSettings(starttls=True, implicit_tls=True)
