from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
)

from conduit.schemas import NotBlank, Schema, reject_blank


def _normalize_email(value: str) -> str:
    try:
        # Lower-cased whole: one mailbox, one account, however its owner capitalises it.
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError("is invalid") from exc


def _blank_to_none(value: object) -> object:
    """RealWorld clients clear `bio` and `image` by sending an empty string."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


Username = Annotated[
    str,
    NotBlank,
    StringConstraints(strip_whitespace=True, max_length=50, pattern=r"^[\w.-]+$"),
]
Email = Annotated[
    str,
    NotBlank,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_normalize_email),
]
# NIST SP 800-63B: at least 8 characters, no composition rules; the upper bound only keeps
# hashing cost in check.
Password = Annotated[str, NotBlank, StringConstraints(min_length=8, max_length=256)]
LoginPassword = Annotated[str, NotBlank, StringConstraints(max_length=256)]
Bio = Annotated[
    Annotated[str, StringConstraints(max_length=2000)] | None, BeforeValidator(_blank_to_none)
]
Image = Annotated[
    Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)] | None,
    BeforeValidator(_blank_to_none),
]


class NewUser(Schema):
    username: Username
    email: Email
    password: Password


class NewUserRequest(Schema):
    user: NewUser


class LoginUser(Schema):
    email: Email
    password: LoginPassword


class LoginUserRequest(Schema):
    user: LoginUser


class UpdateUser(Schema):
    username: Username | None = None
    email: Email | None = None
    password: Password | None = None
    bio: Bio = None
    image: Image = None

    _reject_blank = field_validator("username", "email", "password", mode="before")(reject_blank)


class UpdateUserRequest(Schema):
    user: UpdateUser


class User(Schema):
    email: str
    token: str
    username: str
    bio: str | None
    image: str | None


class UserResponse(Schema):
    user: User


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1, hence snake_case."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class PasswordResetUser(Schema):
    email: Email


class PasswordResetRequest(Schema):
    user: PasswordResetUser


class PasswordResetConfirmation(Schema):
    token: Annotated[str, NotBlank, Field(max_length=200)]
    password: Password
