from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
)

from conduit.schemas import (
    ANY_TEXT,
    HTTP_URL_OR_BLANK,
    NOT_BLANK_TEXT,
    USERNAME,
    Input,
    NotBlank,
    NotNull,
    Schema,
    Strip,
    reject_blank,
    reject_unstorable,
    strip,
)


def _normalize_email(value: str) -> str:
    try:
        # Lower-cased whole: one mailbox, one account, however its owner capitalises it. With
        # deliverability unchecked, `test_environment` only lets in RFC 6761's `.test` domains,
        # which the document's `format: email` allows.
        normalized: str = validate_email(
            value, check_deliverability=False, test_environment=True
        ).normalized
        return normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError("is invalid") from exc


def _blank_to_none(value: object) -> object:
    """RealWorld clients clear `bio` and `image` by sending an empty string."""
    if isinstance(value, str) and not strip(value):
        return None
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


Username = Annotated[str, Field(max_length=50, pattern=USERNAME), NotBlank, Strip]
Email = Annotated[
    str,
    Field(max_length=254, pattern=NOT_BLANK_TEXT, json_schema_extra={"format": "email"}),
    NotBlank,
    Strip,
    AfterValidator(_normalize_email),
]
# NIST SP 800-63B: at least 8 characters, no composition rules; the upper bound only keeps
# hashing cost in check.
Password = Annotated[str, Field(min_length=8, max_length=256, pattern=NOT_BLANK_TEXT), NotBlank]
LoginPassword = Annotated[str, Field(max_length=256, pattern=NOT_BLANK_TEXT), NotBlank]
# An empty or whitespace-only `bio` or `image` clears it.
Bio = Annotated[
    Annotated[str, Field(max_length=2000, pattern=ANY_TEXT)] | None,
    BeforeValidator(_blank_to_none),
]
Image = Annotated[
    Annotated[
        str,
        Field(max_length=2048, json_schema_extra={"pattern": HTTP_URL_OR_BLANK}),
        AfterValidator(_http_url),
    ]
    | None,
    BeforeValidator(_blank_to_none),
]


class NewUser(Input):
    username: Username
    email: Email
    password: Password


class NewUserRequest(Input):
    user: NewUser


class LoginUser(Input):
    email: Email
    password: LoginPassword


class LoginUserRequest(Input):
    user: LoginUser


class UpdateUser(Input):
    """Only the fields sent change; `username`, `email` and `password` cannot be null."""

    username: Annotated[Username | None, NotNull] = None
    email: Annotated[Email | None, NotNull] = None
    password: Annotated[Password | None, NotNull] = None
    bio: Bio = None
    image: Image = None

    _reject_blank = field_validator("username", "email", "password", mode="before")(reject_blank)


class UpdateUserRequest(Input):
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


class OAuth2Input(BaseModel):
    """A request of the OAuth2 endpoints: RFC 6749's snake_case, checked as `Input` is."""

    _storable = field_validator("*", mode="before")(reject_unstorable)


class PasswordGrant(OAuth2Input):
    """RFC 6749 section 4.3.2: the form of the password grant."""

    grant_type: Annotated[str, Field(pattern="^password$")] | None = None
    username: Annotated[
        str, Field(max_length=254, pattern=ANY_TEXT, description="The email or the username.")
    ]
    password: Annotated[str, Field(max_length=256, pattern=ANY_TEXT)]
    scope: Annotated[str, Field(max_length=1000, pattern=ANY_TEXT)] = ""


class RefreshRequest(OAuth2Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=2048, pattern=ANY_TEXT)]


class PasswordResetUser(Input):
    email: Email


class PasswordResetRequest(Input):
    user: PasswordResetUser


class PasswordResetConfirmation(Input):
    token: Annotated[str, Field(max_length=200, pattern=NOT_BLANK_TEXT), NotBlank]
    password: Password
