"""What every request and response schema shares: camelCase on the wire, the API's timestamps."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

# Unicode's White_Space: what the API trims and calls blank. The document's patterns spell it
# out, as regex engines disagree on `\s` (Python's adds \x1c-\x1f, ECMA 262's drops \x85).
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_SPACE = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The largest value of the 32-bit integer columns (ids): what the database can compare a value to.
MAX_INT32 = 2**31 - 1


def digits_up_to(largest: int) -> str:
    """A pattern admitting exactly the decimal numbers 1..`largest`, no leading zero: a number
    with fewer digits, or one that follows `largest` up to a digit below its own, then any."""
    top = str(largest)
    shorter = [f"[1-9][0-9]{{0,{len(top) - 2}}}"] if len(top) > 1 else []
    below = [
        f"{top[:i]}[{0 if i else 1}-{int(digit) - 1}][0-9]{{{len(top) - i - 1}}}"
        for i, digit in enumerate(top)
        if int(digit) > (0 if i else 1)
    ]
    return f"^(?:{'|'.join([*shorter, *below, top])})$"


# A database id sent as a string of digits.
ID_DIGITS = digits_up_to(MAX_INT32)
# PostgreSQL's text cannot hold U+0000: no string the API takes may contain it, on any database.
ANY_TEXT = r"^[^\x00]*$"
# What `reject_blank` lets through: a character that is not whitespace.
NOT_BLANK_TEXT = rf"^[{_SPACE}]*[^{_SPACE}\x00][^\x00]*$"
# ASCII letters and digits, `_`, `.` and `-`, whitespace around them trimmed.
USERNAME = rf"^[{_SPACE}]*[A-Za-z0-9_.-]+[{_SPACE}]*$"
# An http(s) URL, or only whitespace (which clears the field).
HTTP_URL_OR_BLANK = rf"^(?:https?://[^\x00]*|[{_SPACE}]*)$"


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, as RealWorld clients expect."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]


def reject_blank(value: object) -> object:
    """Empty, whitespace-only and null values of a required field all read "can't be blank"."""
    if value is None or (isinstance(value, str) and not value.strip(WHITESPACE)):
        raise ValueError("can't be blank")
    return value


NotBlank = BeforeValidator(reject_blank)


def _without_null(schema: dict[str, Any]) -> None:
    (value,) = [option for option in schema.pop("anyOf") if option != {"type": "null"}]
    schema.pop("default", None)
    schema.update(value)


# On an optional field that `reject_blank` keeps from being null: the document shows only the
# value's own schema, `Annotated[Title | None, NotNull] = None`.
NotNull = Field(json_schema_extra=_without_null)


def strip(value: str) -> str:
    return value.strip(WHITESPACE)


# Applied after the length check: `maxLength` in the document counts what the client sent.
Strip = AfterValidator(strip)


def reject_unstorable(value: object) -> object:
    """A string holding U+0000 or a lone surrogate (JSON can escape both) is refused with the
    field named, instead of failing in the database."""
    for text in value if isinstance(value, list) else (value,):
        if isinstance(text, str) and ("\x00" in text or not _is_unicode(text)):
            raise ValueError("contains a character that is not allowed")
    return value


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# A slug or username in a path.
PathName = Annotated[str, Path(max_length=255, pattern=ANY_TEXT)]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        from_attributes=True,
    )


class Input(Schema):
    """A request body: every string in it is checked by `reject_unstorable`."""

    _storable = field_validator("*", mode="before")(reject_unstorable)


class JSONText(Response):
    """A response whose body is JSON the database already built (see `conduit.sql_json`); the
    route's `response_model` still documents its shape."""

    media_type = "application/json"
