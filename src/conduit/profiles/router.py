from fastapi import Response

from conduit import api
from conduit.auth.dependencies import CurrentUser, OptionalCaller
from conduit.cache import NOT_MODIFIED, Cached
from conduit.database import ReadSession, Session, SessionReader
from conduit.errors import responses
from conduit.profiles import reads, service
from conduit.profiles.schemas import ProfileResponse
from conduit.schemas import JSONText, PathName

router = api.router("/profiles", tags=["Profile"])


@router.get(
    "/{username}",
    response_model=ProfileResponse,
    responses=responses(401, 403, 404, 422) | NOT_MODIFIED,
)
async def get_profile(
    username: PathName, db: ReadSession, caller: OptionalCaller, cache: Cached
) -> Response:
    """A user's public profile; `following` says whether the viewer follows them."""
    return await cache.respond(caller, reads.cached(db, username=username))


@router.post(
    "/{username}/follow", response_model=ProfileResponse, responses=responses(401, 403, 404, 422)
)
async def follow(username: PathName, session: Session, user: CurrentUser) -> Response:
    """Follow a user, so that their articles appear in your feed. Following twice is harmless."""
    await service.follow(session, username=username, follower=user)
    return JSONText(await reads.get(SessionReader(session), username=username, viewer_id=user.id))


@router.delete(
    "/{username}/follow", response_model=ProfileResponse, responses=responses(401, 403, 404, 422)
)
async def unfollow(username: PathName, session: Session, user: CurrentUser) -> Response:
    """Stop following a user."""
    await service.unfollow(session, username=username, follower=user)
    return JSONText(await reads.get(SessionReader(session), username=username, viewer_id=user.id))
