"""Settings, read from the environment.

Every knob lives in one of the groups below; each group reads its own `CONDUIT_<GROUP>_*`
variables, and the platform-standard names (`DATABASE_URL`) are read as they are.
"""

from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

# Public on purpose: good enough for a laptop, refused in production.
DEVELOPMENT_SECRET_KEY = "conduit-development-secret-key-do-not-use-in-production"  # noqa: S105
MIN_SECRET_KEY_BYTES = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


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
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def use_async_driver(cls, value: str) -> str:
        """Map the `postgres://` and `postgresql://` URLs that hosting platforms set to asyncpg."""
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value.removeprefix(prefix)
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        return value

    @cached_property
    def sqlalchemy_url(self) -> URL:
        return make_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.get_backend_name() == "sqlite"


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONDUIT_AUTH_", extra="ignore", validate_by_name=True
    )

    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY),
        validation_alias="CONDUIT_SECRET_KEY",
    )
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    hash_concurrency: int = Field(default=4, ge=1, le=64)


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONDUIT_HTTP_", extra="ignore")

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONDUIT_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @model_validator(mode="after")
    def refuse_weak_secret_in_production(self) -> "Settings":
        if self.env is Environment.PRODUCTION:
            secret = self.auth.secret_key.get_secret_value()
            if secret == DEVELOPMENT_SECRET_KEY:
                raise ValueError("CONDUIT_SECRET_KEY must be set in production")
            if len(secret.encode()) < MIN_SECRET_KEY_BYTES:
                raise ValueError(
                    f"CONDUIT_SECRET_KEY must have at least {MIN_SECRET_KEY_BYTES} bytes"
                    " in production"
                )
        return self
