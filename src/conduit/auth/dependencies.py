"""Who is calling: a RealWorld or OAuth2 access token in `Authorization`, or an API key in
`X-API-Key`. The three schemes are declared here so that /docs offers each of them."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from conduit.api_keys import service as api_keys_service
from conduit.auth import reads
from conduit.auth.passwords import PasswordHasher
from conduit.auth.principal import ALL_SCOPES, Account, Principal, Scope, SignedIn
from conduit.auth.tokens import verify_access_token
from conduit.config import Settings
from conduit.database import Reader, ReadSession, database_of, transaction, utcnow
from conduit.errors import Forbidden, Unauthorized

_realworld_scheme = APIKeyHeader(
    name="Authorization",
    scheme_name="Token",
    description="`Token <jwt>`, with the token from login or registration (RealWorld clients).",
    auto_error=False,
)
_oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/auth/token",
    scheme_name="OAuth2",
    description="`Bearer <jwt>`, from the OAuth2 password flow; renew it with the refresh token.",
    auto_error=False,
)
_api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    scheme_name="APIKey",
    description="An API key from `POST /api/user/api-keys`, scoped `read` and/or `write`.",
    auto_error=False,
)

# The methods an API key's `read` scope allows; `write` allows the rest.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Every dependency here is `async def`, even with nothing to await: FastAPI runs plain `def`
# dependencies in a thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_password_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.password_hasher
    return hasher


AppSettings = Annotated[Settings, Depends(get_settings)]
Hasher = Annotated[PasswordHasher, Depends(get_password_hasher)]


def _token_scheme(authorization: str) -> str:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "token" or not token.strip():
        raise Unauthorized("token")
    return token.strip()


async def _with_api_key(request: Request, db: Reader, api_key: str) -> Principal:
    """The key's owner. The key's use is recorded in a unit of work of its own, committed
    whatever the request then does: the key was used."""
    now = utcnow()
    holder = await api_keys_service.authenticate(db, api_key, now=now)
    if holder.stale:
        async with transaction(database_of(request).sessions) as session:
            await api_keys_service.record_use(session, key_id=holder.key_id, now=now)
    return Principal(user=holder.account, scopes=holder.scopes)


async def _authenticate(  # noqa: PLR0917 - FastAPI passes dependencies by keyword
    request: Request,
    db: ReadSession,
    settings: AppSettings,
    authorization: Annotated[str | None, Depends(_realworld_scheme)],
    bearer: Annotated[str | None, Depends(_oauth2_scheme)],
    api_key: Annotated[str | None, Depends(_api_key_scheme)],
) -> Principal | None:
    if api_key is not None:
        if authorization is not None:
            raise Unauthorized("token", "send either Authorization or X-API-Key, not both")
        return await _with_api_key(request, db, api_key)
    if authorization is None:
        return None
    token = bearer or _token_scheme(authorization)
    claims = verify_access_token(settings.auth, token)
    account = await reads.signed_in(db, user_id=claims.user_id, session_id=claims.session_id)
    if account is None:
        raise Unauthorized("token")
    return Principal(
        user=Account.model_validate_json(account),
        scopes=ALL_SCOPES,
        session_id=claims.session_id,
        token=token,
    )


async def optional_principal(
    request: Request, principal: Annotated[Principal | None, Depends(_authenticate)]
) -> Principal | None:
    """The caller, if credentials were sent; they must carry the scope the method needs
    (`read` for GET, `write` for everything else). Credentials sent but invalid are a 401."""
    if principal is not None:
        needed = Scope.READ if request.method in _SAFE_METHODS else Scope.WRITE
        if needed not in principal.scopes:
            raise Forbidden("api_key", f"lacks the {needed} scope")
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized("token", "is missing")
    return principal


async def signed_in(principal: Annotated[Principal, Depends(current_principal)]) -> SignedIn:
    """A caller with a session: credentials are managed by people, not by API keys."""
    if principal.session_id is None:
        raise Forbidden("api_key", "can't manage credentials")
    return SignedIn(user=principal.user, session_id=principal.session_id)


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> Account:
    return principal.user


async def optional_user(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Account | None:
    return principal.user if principal is not None else None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
SignedInUser = Annotated[SignedIn, Depends(signed_in)]
CurrentUser = Annotated[Account, Depends(current_user)]
OptionalUser = Annotated[Account | None, Depends(optional_user)]
