from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from conduit.api_keys import service
from conduit.api_keys.schemas import (
    ApiKey,
    ApiKeysResponse,
    CreatedApiKey,
    CreatedApiKeyResponse,
    NewApiKeyRequest,
)
from conduit.auth.dependencies import SignedInUser
from conduit.database import Session

router = APIRouter(prefix="/user/api-keys", tags=["API keys"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: NewApiKeyRequest, session: Session, signed_in: SignedInUser
) -> CreatedApiKeyResponse:
    """Create a key for a machine client. `scopes` is any of `read` (GET requests) and `write`
    (everything else); `expiresAt` is optional. The response carries the secret `key`, the only
    time it is ever shown: store it then."""
    api_key, key = await service.create(session, user=signed_in.user, new=body.api_key)
    created = CreatedApiKey.model_validate(
        ApiKey.model_validate(api_key).model_dump() | {"key": key}
    )
    return CreatedApiKeyResponse(api_key=created)


@router.get("")
async def list_api_keys(session: Session, signed_in: SignedInUser) -> ApiKeysResponse:
    """Your keys, without their secrets."""
    keys = await service.list_keys(session, user=signed_in.user)
    return ApiKeysResponse.model_validate({"api_keys": keys})


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: Session,
    signed_in: SignedInUser,
) -> Response:
    """Revoke a key: it stops working at once."""
    await service.revoke(session, user=signed_in.user, key_id=key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
