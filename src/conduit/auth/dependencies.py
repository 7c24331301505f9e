"""Who is calling: a RealWorld or OAuth2 access token in `Authorization`, or an API key in
`X-API-Key`. The three schemes are described here and declared in OpenAPI on every route that
authenticates (`conduit.openapi`), so that /docs offers each of them."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from conduit import clients, kv, request_state
from conduit.api_keys import service as api_keys_service
from conduit.auth import reads, sessions
from conduit.auth.passwords import PasswordHasher
from conduit.auth.principal import ALL_SCOPES, SAFE_METHODS, Account, Principal, Scope, SignedIn
from conduit.auth.tokens import verify_access_token
from conduit.config import Settings
from conduit.database import Reader, ReadSession, Session, transaction, utcnow
from conduit.database.replicas import follow_writes
from conduit.errors import Forbidden, Unauthorized
from conduit.ratelimit.dependencies import limit_caller, may_fill_cache

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

# Every dependency here is `async def`, even with nothing to await: FastAPI runs plain `def`
# dependencies in a thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    return clients.of(request).settings


async def get_password_hasher(request: Request) -> PasswordHasher:
    return clients.of(request).password_hasher


AppSettings = Annotated[Settings, Depends(get_settings)]
Hasher = Annotated[PasswordHasher, Depends(get_password_hasher)]


def _access_token(authorization: str) -> str:
    """The token of `Authorization: Token <jwt>` (RealWorld) or `Bearer <jwt>` (OAuth2)."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() not in {"token", "bearer"} or not token.strip():
        raise Unauthorized("token")
    return token.strip()


async def _with_api_key(request: Request, db: Reader, api_key: str) -> Principal:
    """The key's owner. The key's use is recorded in a unit of work of its own, committed
    whatever the request then does: the key was used."""
    now = utcnow()
    holder = await api_keys_service.authenticate(db, api_key, now=now)
    if await follow_writes(request, holder.account.id):
        # Read before the owner was known, perhaps on a replica that has not seen their last
        # write: a revocation of this key, say.
        holder = await api_keys_service.authenticate(db, api_key, now=now)
    if holder.stale:
        async with transaction(clients.of(request).database.sessions) as session:
            await api_keys_service.record_use(session, key_id=holder.key_id, now=now)
    return Principal(user=holder.account, scopes=holder.scopes, api_key_id=holder.key_id)


async def _with_token(request: Request, db: Reader, authorization: str) -> Principal:
    token = _access_token(authorization)
    claims = verify_access_token(clients.of(request).settings.auth, token)
    await follow_writes(request, claims.user_id)
    account = await reads.signed_in(db, user_id=claims.user_id, session_id=claims.session_id)
    if account is None:
        raise Unauthorized("token")
    return Principal(
        user=Account.model_validate_json(account),
        scopes=ALL_SCOPES,
        session_id=claims.session_id,
        token=token,
    )


async def _identify(request: Request, db: Reader) -> Principal | None:
    """The caller, if credentials were sent. Credentials sent but invalid are a 401.

    Headers are read here rather than through FastAPI's security dependencies: each dependency
    FastAPI solves costs more than the statement of an anonymous read. `conduit.openapi`
    declares the three schemes in OpenAPI instead.
    """
    api_key = request.headers.get("x-api-key") or None
    authorization = request.headers.get("authorization") or None
    if api_key is not None:
        if authorization is not None:
            raise Unauthorized("token", "send either Authorization or X-API-Key, not both")
        return await _with_api_key(request, db, api_key)
    if authorization is not None:
        return await _with_token(request, db, authorization)
    return None


async def _principal(request: Request, db: Reader, *, count: bool = True) -> Principal | None:
    """The caller, counted against its rate limit; its credentials must carry the scope the
    method needs (`read` for GET, `write` for everything else). A request whose credentials
    are refused counts against its address, as an anonymous one: guessing is not free. With
    `count` false, a caller who is let in is left for the route to count (`Caller`)."""
    try:
        principal = await _identify(request, db)
    except Unauthorized:
        await limit_caller(request, None)
        raise
    identity = principal.rate_limit_key if principal is not None else None
    if principal is not None:
        request_state.of(request.scope).user_id = principal.user.id
    if count:
        await limit_caller(request, identity)
    if principal is None:
        return None
    needed = Scope.READ if request.method in SAFE_METHODS else Scope.WRITE
    if needed not in principal.scopes:
        if not count:
            await limit_caller(request, identity)
        raise Forbidden("api_key", f"lacks the {needed} scope")
    return principal


async def _current_principal(request: Request, db: Reader, *, count: bool = True) -> Principal:
    principal = await _principal(request, db, count=count)
    if principal is None:
        if not count:
            await limit_caller(request, None)
        raise Unauthorized("token", "is missing")
    return principal


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller let in but not yet counted against its rate limit: a cached read counts it in
    the round trip of its cache lookup (`conduit.cache`)."""

    request: Request
    principal: Principal | None

    @property
    def viewer_id(self) -> int | None:
        return self.principal.user.id if self.principal is not None else None

    def __post_init__(self) -> None:
        request_state.of(self.request.scope).uncounted = self.count

    async def count(self, alongside: Sequence[kv.Command] = ()) -> list[object] | None:
        request_state.of(self.request.scope).uncounted = None
        identity = self.principal.rate_limit_key if self.principal is not None else None
        return await limit_caller(self.request, identity, alongside)

    async def may_fill(self) -> bool:
        identity = self.principal.rate_limit_key if self.principal is not None else None
        return await may_fill_cache(self.request, identity)


@dataclass(frozen=True, slots=True)
class SignedInCaller(Caller):
    principal: Principal


# The dependencies: each route asks for one of them, so a request solves one.


async def current_principal(request: Request, db: ReadSession) -> Principal:
    return await _current_principal(request, db)


async def signed_in(request: Request, db: ReadSession) -> SignedIn:
    """A caller with a session: credentials are managed by people, not by API keys."""
    principal = await _current_principal(request, db)
    if principal.session_id is None:
        raise Forbidden("api_key", "can't manage credentials")
    return SignedIn(user=principal.user, session_id=principal.session_id)


async def recently_signed_in(
    signed_in: Annotated[SignedIn, Depends(signed_in)], session: Session, settings: AppSettings
) -> SignedIn:
    """A caller whose session signed in recently (`sessions.ensure_recent`), checked in the
    request's unit of work: for routes that create credentials."""
    await sessions.ensure_recent(session, settings.auth, session_id=signed_in.session_id)
    return signed_in


async def current_user(request: Request, db: ReadSession) -> Account:
    return (await _current_principal(request, db)).user


async def optional_user(request: Request, db: ReadSession) -> Account | None:
    principal = await _principal(request, db)
    return principal.user if principal is not None else None


async def optional_caller(request: Request, db: ReadSession) -> Caller:
    return Caller(request, await _principal(request, db, count=False))


async def signed_in_caller(request: Request, db: ReadSession) -> SignedInCaller:
    return SignedInCaller(request, await _current_principal(request, db, count=False))


async def anonymous_caller(request: Request) -> Caller:
    """For routes that do not authenticate: counted by the client's address."""
    return Caller(request, None)


_REQUIRED = {current_principal, signed_in, current_user, signed_in_caller}
_OPTIONAL = {optional_user, optional_caller}
_SCHEMES = (_realworld_scheme, _oauth2_scheme, _api_key_scheme)
# Any one of the schemes; an empty alternative where anonymous callers are served too.
_REQUIREMENT: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in _SCHEMES]
_OPTIONAL_REQUIREMENT = [*_REQUIREMENT, {}]


def _authentication(dependant: Dependant) -> set[Any]:
    """The authenticating dependencies `dependant` solves."""
    found = set()
    for dependency in dependant.dependencies:
        if dependency.call in _REQUIRED or dependency.call in _OPTIONAL:
            found.add(dependency.call)
        found |= _authentication(dependency)
    return found


def security_schemes() -> dict[str, Any]:
    """The three schemes, as OpenAPI's `components.securitySchemes`."""
    return {
        scheme.scheme_name: scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for scheme in _SCHEMES
    }


def security_requirement(route: APIRoute) -> list[dict[str, list[str]]] | None:
    """What `route` declares as its `security`, if it authenticates its caller, as FastAPI
    would for its own security dependencies; /docs offers each scheme."""
    authentication = _authentication(route.dependant)
    if authentication & _REQUIRED:
        return _REQUIREMENT
    return _OPTIONAL_REQUIREMENT if authentication else None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
SignedInUser = Annotated[SignedIn, Depends(signed_in)]
RecentlySignedInUser = Annotated[SignedIn, Depends(recently_signed_in)]
CurrentUser = Annotated[Account, Depends(current_user)]
OptionalUser = Annotated[Account | None, Depends(optional_user)]
OptionalCaller = Annotated[Caller, Depends(optional_caller)]
CallerSignedIn = Annotated[SignedInCaller, Depends(signed_in_caller)]
AnonymousCaller = Annotated[Caller, Depends(anonymous_caller)]
