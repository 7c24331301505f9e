from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from conduit.auth import service
from conduit.auth.models import User
from conduit.auth.passwords import PasswordHasher
from conduit.auth.tokens import user_id_from_token
from conduit.config import Settings
from conduit.database import Session
from conduit.errors import Unauthorized

# Declared as an API key header so that /docs shows the RealWorld `Token <jwt>` scheme.
_authorization = APIKeyHeader(
    name="Authorization",
    scheme_name="Token",
    description="`Token <jwt>` as RealWorld clients send it; `Bearer <jwt>` is accepted too.",
    auto_error=False,
)

_SCHEMES = {"token", "bearer"}


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_password_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


AppSettings = Annotated[Settings, Depends(get_settings)]
Hasher = Annotated[PasswordHasher, Depends(get_password_hasher)]


def optional_token(header: Annotated[str | None, Depends(_authorization)]) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in _SCHEMES or not token.strip():
        raise Unauthorized("token")
    return token.strip()


def required_token(token: Annotated[str | None, Depends(optional_token)]) -> str:
    if token is None:
        raise Unauthorized("token", "is missing")
    return token


async def _user_for_token(session: Session, settings: Settings, token: str) -> User:
    user_id = user_id_from_token(token, secret=settings.auth.secret_key.get_secret_value())
    user = await service.get_by_id(session, user_id)
    if user is None:
        raise Unauthorized("token")
    return user


async def optional_user(
    session: Session, settings: AppSettings, token: Annotated[str | None, Depends(optional_token)]
) -> User | None:
    """The viewer, when a token is sent. A token that is sent but invalid is still a 401."""
    if token is None:
        return None
    return await _user_for_token(session, settings, token)


async def current_user(
    session: Session, settings: AppSettings, token: Annotated[str, Depends(required_token)]
) -> User:
    return await _user_for_token(session, settings, token)


CurrentToken = Annotated[str, Depends(required_token)]
CurrentUser = Annotated[User, Depends(current_user)]
OptionalUser = Annotated[User | None, Depends(optional_user)]
