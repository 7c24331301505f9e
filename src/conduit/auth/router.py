from fastapi import APIRouter, status

from conduit.auth import service
from conduit.auth.dependencies import AppSettings, CurrentToken, CurrentUser, Hasher
from conduit.auth.models import User
from conduit.auth.schemas import (
    LoginUserRequest,
    NewUserRequest,
    UpdateUserRequest,
    UserResponse,
)
from conduit.auth.tokens import create_token
from conduit.config import Settings
from conduit.database import Session

router = APIRouter(tags=["User and Authentication"])


def _user_response(user: User, token: str) -> UserResponse:
    return UserResponse.model_validate(
        {
            "user": {
                "email": user.email,
                "token": token,
                "username": user.username,
                "bio": user.bio,
                "image": user.image,
            }
        }
    )


def _new_token(user: User, settings: Settings) -> str:
    return create_token(
        user.id,
        secret=settings.auth.secret_key.get_secret_value(),
        ttl_seconds=settings.auth.token_ttl_seconds,
    )


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def register(
    body: NewUserRequest, session: Session, hasher: Hasher, settings: AppSettings
) -> UserResponse:
    """Register a new user. Usernames and emails are unique; the password needs 8 characters."""
    user = await service.register(session, hasher, new_user=body.user)
    return _user_response(user, _new_token(user, settings))


@router.post("/users/login")
async def login(
    body: LoginUserRequest, session: Session, hasher: Hasher, settings: AppSettings
) -> UserResponse:
    """Exchange an email and password for a token. A failure does not say which one was wrong."""
    user = await service.authenticate(
        session, hasher, email=body.user.email, password=body.user.password
    )
    return _user_response(user, _new_token(user, settings))


@router.get("/user")
async def get_current_user(user: CurrentUser, token: CurrentToken) -> UserResponse:
    """The authenticated user, with the token they authenticated with."""
    return _user_response(user, token)


@router.put("/user")
async def update_current_user(
    body: UpdateUserRequest,
    user: CurrentUser,
    token: CurrentToken,
    session: Session,
    hasher: Hasher,
) -> UserResponse:
    """Change any of username, email, password, bio and image. An empty `bio` or `image` clears it;
    `username`, `email` and `password` cannot be cleared."""
    user = await service.update(session, hasher, user=user, changes=body.user)
    return _user_response(user, token)
