"""What every request and response schema shares: camelCase on the wire, the API's timestamps."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, as RealWorld clients expect."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]


def reject_blank(value: object) -> object:
    """Empty, whitespace-only and null values of a required field all read "can't be blank"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("can't be blank")
    return value


NotBlank = BeforeValidator(reject_blank)


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class JSONText(Response):
    """A response whose body is JSON the database already built (see `conduit.sql_json`); the
    route's `response_model` still documents its shape."""

    media_type = "application/json"
