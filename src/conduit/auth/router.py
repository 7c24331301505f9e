from typing import Annotated

from fastapi import Form, Request, Response, status

from conduit import api
from conduit.auth import password_reset, service, sessions
from conduit.auth.dependencies import (
    AppSettings,
    CurrentPrincipal,
    Hasher,
    SignedInUser,
)
from conduit.auth.models import User
from conduit.auth.principal import Account
from conduit.auth.schemas import (
    LoginUserRequest,
    NewUserRequest,
    PasswordGrant,
    PasswordResetConfirmation,
    PasswordResetRequest,
    RefreshRequest,
    TokenResponse,
    UpdateUserRequest,
    UserResponse,
)
from conduit.database import Session
from conduit.errors import OAUTH2_RESPONSES, OAuth2Error, Unauthorized, responses
from conduit.ratelimit.dependencies import (
    Attempts,
    SignInLimit,
    limit_password_change,
    may_send_reset,
)

router = api.router(tags=["User and Authentication"])


def _user_response(user: User | Account, token: str) -> UserResponse:
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


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    dependencies=[SignInLimit],
    responses=responses(409, 422),
)
async def register(
    body: NewUserRequest, session: Session, hasher: Hasher, settings: AppSettings
) -> UserResponse:
    """Register a new user. Usernames and emails are unique; the password needs 8 characters.
    The token is a long-lived RealWorld token; send it as `Authorization: Token <token>`."""
    user = await service.register(session, hasher, new_user=body.user)
    return _user_response(
        user, await sessions.realworld_token(session, settings.auth, user_id=user.id)
    )


@router.post("/users/login", dependencies=[SignInLimit], responses=responses(401, 422))
async def login(
    body: LoginUserRequest,
    session: Session,
    hasher: Hasher,
    settings: AppSettings,
    attempts: Attempts,
) -> UserResponse:
    """Exchange an email and password for a RealWorld token. A failure does not say which of the
    two was wrong; after too many failures the account refuses sign-in for a while (429)."""
    user = await service.authenticate(
        session, hasher, login=body.user.email, password=body.user.password, attempts=attempts
    )
    if user is None:
        raise Unauthorized("credentials", "invalid")
    return _user_response(
        user, await sessions.realworld_token(session, settings.auth, user_id=user.id)
    )


@router.post(
    "/users/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    dependencies=[SignInLimit],
    responses=responses(422),
)
async def request_password_reset(
    body: PasswordResetRequest, session: Session, request: Request
) -> Response:
    """Email a password-reset token, valid for 30 minutes, to the address if it has an account,
    and at most 3 an hour to one address, whoever asks. The answer is the same whether or not it
    has one, and whether or not an email is sent."""
    if await may_send_reset(request, body.user.email):
        await password_reset.request(session, email=body.user.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/users/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[SignInLimit],
    responses=responses(422),
)
async def confirm_password_reset(
    body: PasswordResetConfirmation, session: Session, hasher: Hasher
) -> Response:
    """Set a new password with an emailed token. The token works once, every session of the
    account ends and every API key of it is revoked: sign in again with the new password."""
    await password_reset.confirm(session, hasher, token=body.token, password=body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/user", responses=responses(401, 403))
async def get_current_user(principal: CurrentPrincipal) -> UserResponse:
    """The authenticated user, with the token they authenticated with (empty for an API key:
    a key never turns into a session)."""
    return _user_response(principal.user, principal.token or "")


@router.put("/user", responses=responses(401, 403, 409, 422))
async def update_current_user(
    *,
    body: UpdateUserRequest,
    principal: CurrentPrincipal,
    session: Session,
    hasher: Hasher,
    settings: AppSettings,
    request: Request,
) -> UserResponse:
    """Change any of username, email, password, bio and image. An empty `bio` or `image` clears it;
    `username`, `email` and `password` cannot be cleared. A new password signs out every other
    session and revokes every API key, and counts against the sign-in limit of the address and of
    the account (429). A new email is announced to the old address.

    Changing the email or the password takes a session signed in (registration, login or the
    password grant; a refresh does not count) within `CONDUIT_AUTH_REAUTH_SECONDS`, 15 minutes
    by default: otherwise 403 `{"errors": {"session": ["sign in again to do this"]}}`. An API
    key cannot change them at all."""
    if body.user.password is not None:
        await limit_password_change(request, user_id=principal.user.id)
    user = await service.update(
        session, hasher, settings.auth, principal=principal, changes=body.user
    )
    return _user_response(user, principal.token or "")


@router.post("/auth/token", tags=["OAuth2"], dependencies=[SignInLimit], responses=OAUTH2_RESPONSES)
async def issue_token(
    form: Annotated[PasswordGrant, Form()],
    session: Session,
    hasher: Hasher,
    settings: AppSettings,
    attempts: Attempts,
) -> TokenResponse:
    """OAuth2 password grant (form fields `username`, the email or username, and `password`).
    Returns a short-lived bearer access token and a refresh token. Errors follow RFC 6749:
    400 `{"error": "invalid_grant"}`; too many failures for the account answer 429."""
    user = await service.authenticate(
        session, hasher, login=form.username, password=form.password, attempts=attempts
    )
    if user is None:
        raise OAuth2Error("invalid_grant", "invalid username or password")
    return await sessions.start_oauth(session, settings.auth, user_id=user.id)


@router.post(
    "/auth/refresh", tags=["OAuth2"], dependencies=[SignInLimit], responses=responses(401, 422)
)
async def refresh_token(
    body: RefreshRequest, session: Session, settings: AppSettings
) -> TokenResponse:
    """Trade a refresh token for a new access token and a new refresh token; the old one stops
    working. Presenting a used refresh token again signs its session out entirely, unless within
    10 s of its use: of concurrent refreshes with one token, one gets the new pair and the others
    a 401 that leaves the session alone."""
    return await sessions.refresh(session, settings.auth, refresh_token=body.refresh_token)


@router.post(
    "/auth/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["OAuth2"],
    responses=responses(401, 403),
)
async def logout(session: Session, signed_in: SignedInUser) -> Response:
    """End this session: its access and refresh tokens stop working at once."""
    await sessions.end(session, session_id=signed_in.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/auth/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["OAuth2"],
    responses=responses(401, 403),
)
async def logout_all(session: Session, signed_in: SignedInUser) -> Response:
    """End every session of the user, on every device, and revoke every API key of theirs."""
    await sessions.end_all(session, user_id=signed_in.user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
