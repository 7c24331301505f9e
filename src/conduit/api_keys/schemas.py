from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

from conduit.auth.principal import Scope
from conduit.schemas import NOT_BLANK_TEXT, Input, NotBlank, Schema, Strip, Timestamp

# The latest expiry a key may have: far enough to mean "for good", near enough that its UTC time
# fits every database (9999-12-31T23:59:59-14:00 does not).
MAX_LIFETIME = timedelta(days=36_500)


def _in_the_future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_LIFETIME:
        raise ValueError(f"must be at most {MAX_LIFETIME.days} days ahead")
    return value


class NewApiKey(Input):
    name: Annotated[str, Field(max_length=100, pattern=NOT_BLANK_TEXT), NotBlank, Strip]
    scopes: Annotated[set[Scope], Field(min_length=1)]
    expires_at: Annotated[
        AwareDatetime | None,
        AfterValidator(_in_the_future),
        Field(
            description=f"When the key stops working: in the future, at most "
            f"{MAX_LIFETIME.days:,} days (100 years) ahead. Without it, never."
        ),
    ] = None


class NewApiKeyRequest(Input):
    api_key: NewApiKey


class ApiKey(Schema):
    id: int
    name: str
    scopes: list[Scope]
    prefix: str
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None = Field(
        description="When a password change or reset, or signing out everywhere, revoked the key."
    )


class CreatedApiKey(ApiKey):
    key: str = Field(description="The secret, shown only in this response. Send it as X-API-Key.")


class CreatedApiKeyResponse(Schema):
    api_key: CreatedApiKey


class ApiKeysResponse(Schema):
    api_keys: list[ApiKey]
