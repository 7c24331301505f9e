"""Settings, read from the environment.

Every knob lives in one of the groups below; each group reads its own `CONDUIT_<GROUP>_*`
variables, and the platform-standard names (`DATABASE_URL`) are read as they are.
"""

import ipaddress
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Public on purpose: good enough for a laptop, refused in production.
DEVELOPMENT_SECRET_KEY = "conduit-development-secret-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_BYTES = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_DB_", extra="ignore", validate_by_name=True
    )

    url: str = Field(
        default="sqlite+aiosqlite:///./conduit.db",
        validation_alias="DATABASE_URL",
    )
    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=200)
    read_pool_size: int = Field(default=10, ge=1, le=200)
    # The wait for a connection of either pool: when every one stays busy this long, the
    # request is answered 503.
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # The longest a statement may take, lock waits included: a slow database answers 503
    # rather than holding requests. On PostgreSQL the driver cancels the statement (asyncpg's
    # command_timeout: no startup parameter, which a pooler would refuse), on the connections
    # of the API and the workers (a migration or a seed may take minutes); on SQLite, how long
    # a statement waits for another process's write lock.
    statement_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Opening a connection, TCP and authentication included: an unreachable server fails
    # after this long rather than after the driver's minute.
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # How long `conduit migrate` waits for each lock on PostgreSQL before it rolls the revision
    # back and fails: every statement on a table queues behind a DDL statement waiting for it,
    # so the wait stays under the statement timeout the requests queued behind it have.
    migrate_lock_timeout_seconds: float = Field(default=2.0, gt=0, le=3600)
    # Named prepared statements kept across transactions (asyncpg's statement cache): false
    # behind a pooler in transaction mode that does not carry them from one server connection
    # to the next (PgBouncer before 1.21, or with max_prepared_statements = 0). Each statement
    # is then prepared unnamed, parsed and planned again each time it runs (docs/deployment.md).
    prepared_statements: bool = True
    echo: bool = False
    # The same database without the pooler in front of `url` (PgBouncer in transaction mode),
    # for what needs a session of its own: `conduit migrate`, and the job workers' LISTEN.
    direct_url: str | None = Field(default=None, validation_alias="DATABASE_DIRECT_URL")
    # Streaming replicas of the PostgreSQL at `url`, comma-separated: reads that are not part
    # of a write go to them (`conduit.database.replicas`). SQLite ignores them.
    replica_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="DATABASE_REPLICA_URLS"
    )
    # A replica further behind the primary than this serves no read until it catches up.
    replica_max_lag_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Opening a connection to a replica, and each read on one: past it the read goes to
    # another replica or the primary, and the replica is left alone for a while.
    replica_timeout_seconds: float = Field(default=1.0, gt=0, le=60)

    _split_replica_urls = field_validator("replica_urls", mode="before")(_split_commas)

    @field_validator("url")
    @classmethod
    def use_async_driver(cls, value: str) -> str:
        """Map the `postgres://` and `postgresql://` URLs that hosting platforms set to asyncpg,
        and refuse what Conduit cannot connect to before anything tries."""
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if value.startswith(prefix):
                value = "postgresql+asyncpg://" + value.removeprefix(prefix)
        if value.startswith("sqlite://"):
            value = "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a database URL; use postgresql://user:password@host:5432/name "
                "or sqlite:///path/to/conduit.db"
            ) from None
        if url.drivername not in {"postgresql+asyncpg", "sqlite+aiosqlite"}:
            raise ValueError(
                f"{url.drivername}:// is not supported; use postgresql://... (PostgreSQL, "
                "through asyncpg) or sqlite:///... (SQLite, through aiosqlite)"
            )
        if url.get_backend_name() == "sqlite" and url.database in {None, "", ":memory:"}:
            # Reads and writes use connections of their own, and each would get its own empty
            # in-memory database.
            raise ValueError("SQLite needs a file, e.g. sqlite:///./conduit.db")
        return value

    @field_validator("direct_url")
    @classmethod
    def direct_to_postgres(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return cls._postgres(value, "is the PostgreSQL behind the pooler: a postgresql://... URL")

    @field_validator("replica_urls")
    @classmethod
    def replicas_of_postgres(cls, values: list[str]) -> list[str]:
        refused = "are streaming replicas of PostgreSQL: postgresql://... URLs"
        return [cls._postgres(value, refused) for value in values]

    @classmethod
    def _postgres(cls, value: str, refused: str) -> str:
        url = cls.use_async_driver(value)
        if not url.startswith("postgresql+asyncpg://"):
            raise ValueError(refused)
        return url

    @cached_property
    def sqlalchemy_url(self) -> URL:
        return make_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.get_backend_name() == "sqlite"

    @property
    def asyncpg_dsn(self) -> str:
        """The PostgreSQL URL as asyncpg itself takes it (no SQLAlchemy driver name)."""
        return asyncpg_dsn(self.sqlalchemy_url)

    @property
    def direct_sqlalchemy_url(self) -> URL:
        """Where a session of its own goes: `direct_url`, else `url`."""
        return self.sqlalchemy_url if self.direct_url is None else make_url(self.direct_url)

    @property
    def direct_asyncpg_dsn(self) -> str:
        return asyncpg_dsn(self.direct_sqlalchemy_url)

    @property
    def replica_dsns(self) -> list[str]:
        """The replicas' URLs as asyncpg takes them."""
        return [asyncpg_dsn(make_url(url)) for url in self.replica_urls]


def asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_AUTH_", extra="ignore", validate_by_name=True
    )

    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY),
        validation_alias="CONDUIT_SECRET_KEY",
    )
    # Keys that used to sign tokens: still accepted, never used to sign. Rotate by moving the
    # current key here and setting a new CONDUIT_SECRET_KEY.
    previous_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    issuer: str = "conduit"
    audience: str = "conduit-api"
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=60)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    # Sudo mode: creating an API key, or changing the email or the password, needs a session
    # signed in this recently, so that a stolen token alone cannot take the account over.
    reauth_seconds: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    # One argon2id hash keeps a core busy for ~20 ms: more than one per process at a time would
    # take the CPU the event loop needs to answer everything else (docs/benchmarks.md).
    hash_concurrency: int = Field(default=1, ge=1, le=64)

    _split_previous_keys = field_validator("previous_secret_keys", mode="before")(_split_commas)

    @field_validator("secret_key")
    @classmethod
    def long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(f"signing keys must have at least {MIN_SECRET_KEY_BYTES} bytes")
        return value

    @field_validator("previous_secret_keys")
    @classmethod
    def all_long_enough(cls, values: list[SecretStr]) -> list[SecretStr]:
        for value in values:
            cls.long_enough(value)
        return values


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONDUIT_HTTP_", extra="ignore")

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request's line and headers: beyond, it is answered 431 and its connection closed.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # From a connection opening, or a request's first bytes, to the end of its headers: a
    # client that takes longer is answered 408 and its connection closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    hsts_seconds: int = Field(default=0, ge=0)
    # After SIGTERM: how long requests under way may take to finish, new connections refused.
    shutdown_grace_seconds: int = Field(default=20, ge=0, le=3600)
    # Unset: on in development, off in production.
    docs_enabled: bool | None = None

    _split_lists = field_validator("cors_origins", "trusted_proxies", mode="before")(_split_commas)

    @field_validator("cors_origins")
    @classmethod
    def explicit_origins(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("list the allowed origins explicitly; '*' is not accepted")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def proxy_networks(cls, proxies: list[str]) -> list[str]:
        """Addresses and networks only: uvicorn would take any other text for a host name that
        never matches, so a typo would silently believe no proxy; and '*' would believe every
        client's `X-Forwarded-For`, the address its rate limits count by."""
        for proxy in proxies:
            if proxy == "*":
                raise ValueError(
                    "'*' would believe any client's X-Forwarded-For; list the proxies' "
                    "addresses or networks"
                )
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return proxies


class LogFormat(StrEnum):
    # One JSON object per line, for a log shipper.
    JSON = "json"
    # Aligned, readable lines, for a terminal.
    CONSOLE = "console"


class LogSettings(BaseSettings):
    """What the process writes to stdout (docs/operations.md)."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_LOG_", extra="ignore")

    # Unset: JSON in production, console in development.
    format: LogFormat | None = None
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One line per request (health checks and scrapes at DEBUG).
    access: bool = True

    @field_validator("level", mode="before")
    @classmethod
    def upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class MetricsSettings(BaseSettings):
    """Prometheus metrics at `/metrics`: on a port of their own when `port` is set, and on the
    serving port in development, or in production with a token (docs/operations.md)."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_METRICS_", extra="ignore")

    enabled: bool = True
    # Set: scrapes must send `Authorization: Bearer <token>`.
    token: SecretStr | None = None
    # `conduit serve`'s metrics (every worker's) on this port too, on the interface it serves.
    port: int | None = Field(default=None, ge=1, le=65_535)
    # `conduit worker`'s own metrics (jobs run, failed, their durations) on this port.
    worker_port: int | None = Field(default=None, ge=1, le=65_535)


class RedisSettings(BaseSettings):
    """Where state shared between processes lives: Redis over TCP (`REDIS_URL`: Redis, Valkey,
    or Upstash with `rediss://`), else Upstash over REST (`UPSTASH_REDIS_REST_URL` and
    `UPSTASH_REDIS_REST_TOKEN`), else this process's memory (one process only)."""

    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_REDIS_", extra="ignore", validate_by_name=True
    )

    url: str | None = Field(default=None, validation_alias="REDIS_URL")
    rest_url: str | None = Field(default=None, validation_alias="UPSTASH_REDIS_REST_URL")
    rest_token: SecretStr | None = Field(default=None, validation_alias="UPSTASH_REDIS_REST_TOKEN")
    # Every call, connecting included: a slow Redis must not become a slow API.
    timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    # Deprecated and ignored since one connection serves a process (`conduit.redis_connection`);
    # still read, so that a deployment that sets it keeps starting.
    max_connections: int = Field(default=50, ge=1, le=10_000)
    # Keys are `<prefix>:...`, so that several deployments can share one Redis.
    key_prefix: str = Field(default="conduit", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    @field_validator("url")
    @classmethod
    def redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        if value is not None:
            # At start-up, before anything connects; hiredis only where Redis is configured.
            from conduit.redis_connection import address  # noqa: PLC0415

            address(value)
        return value

    @field_validator("rest_url")
    @classmethod
    def https_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("UPSTASH_REDIS_REST_URL must be an http(s):// URL")
        return value

    @model_validator(mode="after")
    def rest_url_with_token(self) -> "RedisSettings":
        if (self.rest_url is None) != (self.rest_token is None):
            raise ValueError("set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN together")
        return self


class Algorithm(StrEnum):
    SLIDING_WINDOW = "sliding-window"
    FIXED_WINDOW = "fixed-window"
    TOKEN_BUCKET = "token-bucket"  # noqa: S105 (an algorithm, not a credential)


class Rate(BaseModel):
    """`quota` requests per `window_seconds`, counted by `algorithm` (unset: the default one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quota: int = Field(ge=1, le=1_000_000)
    window_seconds: int = Field(ge=1, le=86_400)
    algorithm: Algorithm | None = None


_DEFAULT_RATES = {
    "anonymous": Rate(quota=300, window_seconds=60),
    "reads": Rate(quota=600, window_seconds=60),
    "writes": Rate(quota=60, window_seconds=60),
    "sign_in": Rate(quota=20, window_seconds=60),
    "failed_sign_ins": Rate(quota=10, window_seconds=15 * 60),
    "failed_sign_ins_per_account": Rate(quota=100, window_seconds=15 * 60),
    "password_resets": Rate(quota=3, window_seconds=60 * 60),
    "cache_fills": Rate(quota=30, window_seconds=300),
}


class RateLimitSettings(BaseSettings):
    """One rate per policy, e.g. `CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA=50`; the fields not set
    keep their defaults."""

    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_RATE_LIMIT_", env_nested_delimiter="__", extra="ignore"
    )

    enabled: bool = True
    algorithm: Algorithm = Algorithm.SLIDING_WINDOW
    # Requests without credentials, per client IP (an IPv6 client by its /64).
    anonymous: Rate = _DEFAULT_RATES["anonymous"]
    # Authenticated requests, per user (or per API key): GET/HEAD/OPTIONS, and the rest.
    reads: Rate = _DEFAULT_RATES["reads"]
    writes: Rate = _DEFAULT_RATES["writes"]
    # Registration, login, token, refresh, reset and password changes, per client IP; password
    # changes per account too.
    sign_in: Rate = _DEFAULT_RATES["sign_in"]
    # Sign-in attempts per login (email or username) and client IP, reserved before the password
    # is checked; a successful sign-in gives the attempts back. Once spent, sign-in to that login
    # from that address is refused whatever the password.
    failed_sign_ins: Rate = _DEFAULT_RATES["failed_sign_ins"]
    # The same per login from every address together: the ceiling on distributed guessing.
    failed_sign_ins_per_account: Rate = _DEFAULT_RATES["failed_sign_ins_per_account"]
    # Password-reset emails per address they go to, whoever asks; past it the request is still
    # answered 202 and no email is sent.
    password_resets: Rate = _DEFAULT_RATES["password_resets"]
    # Read-cache entries a caller's misses may store, per caller as above (docs/caching.md);
    # once spent, its misses are answered and not stored.
    cache_fills: Rate = _DEFAULT_RATES["cache_fills"]

    @model_validator(mode="before")
    @classmethod
    def complete_rates(cls, values: Any) -> Any:
        """A rate given in part (one nested variable) keeps its default for the rest."""
        if isinstance(values, dict):
            for name, default in _DEFAULT_RATES.items():
                given = values.get(name)
                if isinstance(given, dict):
                    values[name] = {**default.model_dump(), **given}
        return values


class CacheSettings(BaseSettings):
    """The read cache, in the store `RedisSettings` names (docs/caching.md)."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_CACHE_", extra="ignore")

    enabled: bool = True
    # How long an entry may live; invalidation makes it unreachable before then.
    ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    # The documents a process with no shared store (the embedded default) keeps, in bytes.
    memory_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024, le=16 * 1024**3)
    # A bigger document is served, not stored (docs/caching.md, "Bounds").
    max_entry_bytes: int = Field(default=128 * 1024, ge=1024, le=16 * 1024**2)


class JobsBackend(StrEnum):
    # Conduit's own table, run by the API process itself: SQLite, one machine.
    EMBEDDED = "embedded"
    # PgQueuer's tables in the same PostgreSQL, run by `conduit worker` processes.
    PGQUEUER = "pgqueuer"
    # Conduit's own table, delivered by QStash to `POST /jobs/qstash`.
    QSTASH = "qstash"


class JobsSettings(BaseSettings):
    """Background jobs (docs/jobs.md). Unset, the backend follows from the rest of the
    configuration: QStash when QSTASH_TOKEN is set, else PgQueuer on PostgreSQL, else embedded."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_JOBS_", extra="ignore")

    backend: JobsBackend | None = None
    # The embedded backend: run jobs in the API process (false: only in `conduit worker`).
    run_in_api: bool = True
    # Runs of a failing job before it is held as failed (the dead letter).
    max_attempts: int = Field(default=5, ge=1, le=100)
    # The n-th retry waits between half and all of min(base * 2^(n-1), max).
    retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # A run that takes longer is cancelled and counts as a failed attempt.
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # PgQueuer: a job whose worker has not signalled for this long (killed, partitioned) is
    # taken by another worker.
    heartbeat_timeout_seconds: float = Field(default=30.0, ge=1, le=3600)
    # Jobs one worker process runs at once.
    concurrency: int = Field(default=10, ge=1, le=1000)
    # Followers notified per statement when an author publishes.
    fan_out_batch_size: int = Field(default=1000, ge=1, le=100_000)
    # Once the oldest queued job has waited this long since it was due, the API warns (jobs
    # piling up: the usual sign that no `conduit worker` runs), once per check.
    wait_warning_seconds: float = Field(default=300.0, gt=0, le=7 * 86_400)
    # How often each API process reads the queue for that warning.
    wait_check_seconds: float = Field(default=60.0, gt=0, le=86_400)
    # The URL QStash delivers to: this deployment's public `.../jobs/qstash`.
    qstash_callback_url: str | None = None

    @field_validator("qstash_callback_url")
    @classmethod
    def https_callback(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("CONDUIT_JOBS_QSTASH_CALLBACK_URL must be an http(s):// URL")
        return value


class QStashSettings(BaseSettings):
    """Upstash QStash, by its platform-standard variables."""

    model_config = SettingsConfigDict(env_prefix="QSTASH_", extra="ignore")

    token: SecretStr | None = None
    current_signing_key: SecretStr | None = None
    next_signing_key: SecretStr | None = None
    # The API's base URL (unset: the SDK's default, Upstash's own).
    url: str | None = None


class SmtpSettings(BaseSettings):
    """Where email goes. With no host, every email is written to the log instead (the
    embedded default); in production only its subject and its recipient's digest are."""

    model_config = SettingsConfigDict(env_prefix="CONDUIT_SMTP_", extra="ignore")

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65_535)
    username: str | None = None
    password: SecretStr | None = None
    # STARTTLS after connecting (port 587), or TLS from the first byte (port 465).
    starttls: bool = True
    implicit_tls: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    sender: str = "Conduit <no-reply@conduit.localhost>"
    # Where a password-reset email sends its reader; `{token}` is replaced by the token.
    password_reset_url: str | None = None

    @model_validator(mode="after")
    def one_tls_mode(self) -> "SmtpSettings":
        if self.starttls and self.implicit_tls:
            raise ValueError(
                "set one of CONDUIT_SMTP_STARTTLS and CONDUIT_SMTP_IMPLICIT_TLS, not both"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONDUIT_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    qstash: QStashSettings = Field(default_factory=QStashSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)

    @model_validator(mode="after")
    def refuse_default_secret_in_production(self) -> "Settings":
        if (
            self.env is Environment.PRODUCTION
            and self.auth.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY
        ):
            raise ValueError(
                "CONDUIT_SECRET_KEY must be set in production, to at least 32 random bytes: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        return self

    @model_validator(mode="after")
    def refuse_default_database_in_production(self) -> "Settings":
        """The default, a SQLite file in whatever directory the process starts in, is for a
        laptop: in production it would be a database nobody chose, lost with the container.
        SQLite named explicitly is accepted (one process on one machine)."""
        if self.env is Environment.PRODUCTION and "url" not in self.database.model_fields_set:
            raise ValueError(
                "DATABASE_URL must be set in production: postgresql://user:password@host:5432/"
                "name, or sqlite:////path/to/conduit.db for one process on one machine"
            )
        return self

    @model_validator(mode="after")
    def jobs_backend_fits(self) -> "Settings":
        backend = self.jobs_backend
        if backend is JobsBackend.PGQUEUER and self.database.is_sqlite:
            raise ValueError("the pgqueuer jobs backend needs PostgreSQL (DATABASE_URL)")
        if backend is JobsBackend.EMBEDDED and not self.database.is_sqlite:
            raise ValueError(
                "the embedded jobs backend runs on SQLite only; on PostgreSQL use pgqueuer "
                "(`conduit worker`) or qstash"
            )
        if backend is JobsBackend.QSTASH:
            qstash = self.qstash
            if qstash.token is None or None in (
                qstash.current_signing_key,
                qstash.next_signing_key,
            ):
                raise ValueError(
                    "the qstash jobs backend needs QSTASH_TOKEN, QSTASH_CURRENT_SIGNING_KEY "
                    "and QSTASH_NEXT_SIGNING_KEY"
                )
            if self.jobs.qstash_callback_url is None:
                raise ValueError(
                    "the qstash jobs backend needs CONDUIT_JOBS_QSTASH_CALLBACK_URL, the public "
                    "URL of this deployment's /jobs/qstash"
                )
        return self

    @property
    def jobs_backend(self) -> JobsBackend:
        if self.jobs.backend is not None:
            return self.jobs.backend
        if self.qstash.token is not None:
            return JobsBackend.QSTASH
        return JobsBackend.EMBEDDED if self.database.is_sqlite else JobsBackend.PGQUEUER

    @property
    def log_format(self) -> LogFormat:
        if self.log.format is not None:
            return self.log.format
        return LogFormat.JSON if self.env is Environment.PRODUCTION else LogFormat.CONSOLE

    @property
    def metrics_on_serving_port(self) -> bool:
        """In production the API's port is public: its metrics (routes, pools, the job queue)
        are not, unless a scrape must show the token."""
        return self.metrics.enabled and (
            self.env is Environment.DEVELOPMENT or self.metrics.token is not None
        )

    @property
    def docs_enabled(self) -> bool:
        if self.http.docs_enabled is None:
            return self.env is Environment.DEVELOPMENT
        return self.http.docs_enabled


def _variable(model: type[BaseSettings], loc: tuple[int | str, ...]) -> str | None:
    """The environment variable behind an error's location in `model`."""
    if not loc:
        return None
    first = str(loc[0])
    field = model.model_fields.get(first)
    if field is None:
        # Read from the environment under its own name (validation_alias): DATABASE_URL.
        return first
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    delimiter = model.model_config.get("env_nested_delimiter") or "__"
    path = delimiter.join(str(part) for part in loc)
    return f"{model.model_config.get('env_prefix', '')}{path}".upper()


_GROUPS: dict[str, type[BaseSettings]] = {
    group.__name__: group
    for group in (
        Settings,
        DatabaseSettings,
        AuthSettings,
        HttpSettings,
        LogSettings,
        MetricsSettings,
        RedisSettings,
        RateLimitSettings,
        CacheSettings,
        JobsSettings,
        QStashSettings,
        SmtpSettings,
    )
}


def explain(error: ValidationError) -> list[str]:
    """A refused configuration, one line per problem, naming its variable and what is wrong,
    never the value (it may be a secret)."""
    model = _GROUPS[error.title]
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        message = problem["msg"].removeprefix("Value error, ")
        variable = _variable(model, problem["loc"])
        lines.append(message if variable is None else f"{variable}: {message}")
    return lines
