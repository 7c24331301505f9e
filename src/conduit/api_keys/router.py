from typing import Annotated

from fastapi import Path, Response, status

from conduit import api
from conduit.api_keys import reads, service
from conduit.api_keys.schemas import ApiKeysResponse, CreatedApiKeyResponse, NewApiKeyRequest
from conduit.auth.dependencies import RecentlySignedInUser, SignedInUser
from conduit.database import ReadSession, Session, SessionReader
from conduit.errors import responses
from conduit.schemas import JSONText

router = api.router("/user/api-keys", tags=["API keys"])

_SIGNED_IN = responses(401, 403)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedApiKeyResponse,
    responses=responses(401, 403, 422),
)
async def create_api_key(
    body: NewApiKeyRequest, session: Session, signed_in: RecentlySignedInUser
) -> Response:
    """Create a key for a machine client. `scopes` is any of `read` (GET requests) and `write`
    (everything else); `expiresAt` is optional. The response carries the secret `key`, the only
    time it is ever shown: store it then.

    Takes a session signed in (registration, login or the password grant; a refresh does not
    count) within `CONDUIT_AUTH_REAUTH_SECONDS`, 15 minutes by default: otherwise 403
    `{"errors": {"session": ["sign in again to do this"]}}`. A password change or reset, or
    signing out everywhere, revokes every key."""
    key_id, key = await service.create(session, user_id=signed_in.user.id, new=body.api_key)
    document = await reads.created(SessionReader(session), key_id=key_id, key=key)
    return JSONText(document, status_code=status.HTTP_201_CREATED)


@router.get("", response_model=ApiKeysResponse, responses=_SIGNED_IN)
async def list_api_keys(db: ReadSession, signed_in: SignedInUser) -> Response:
    """Your keys, without their secrets. A key revoked by a password change or reset, or by
    signing out everywhere, stays listed with its `revokedAt` for 30 days."""
    return JSONText(await reads.for_user(db, user_id=signed_in.user.id))


@router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 404, 422)
)
async def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: Session,
    signed_in: SignedInUser,
) -> Response:
    """Revoke a key: it stops working at once, and is deleted."""
    await service.revoke(session, user_id=signed_in.user.id, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
