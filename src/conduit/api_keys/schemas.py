from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field

from conduit.auth.principal import Scope
from conduit.schemas import NOT_BLANK_TEXT, Input, NotBlank, Schema, Strip, Timestamp


def _in_the_future(value: datetime | None) -> datetime | None:
    if value is not None and value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


class NewApiKey(Input):
    name: Annotated[str, Field(max_length=100, pattern=NOT_BLANK_TEXT), NotBlank, Strip]
    scopes: Annotated[set[Scope], Field(min_length=1)]
    expires_at: Annotated[AwareDatetime | None, AfterValidator(_in_the_future)] = None


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
