from fastapi import APIRouter

from conduit.auth.dependencies import CurrentUser, OptionalUser
from conduit.database import Session
from conduit.profiles import service
from conduit.profiles.schemas import ProfileResponse

router = APIRouter(prefix="/profiles", tags=["Profile"])


@router.get("/{username}")
async def get_profile(username: str, session: Session, viewer: OptionalUser) -> ProfileResponse:
    """A user's public profile; `following` says whether the viewer follows them."""
    profile = await service.get_profile(session, username=username, viewer=viewer)
    return ProfileResponse.model_validate({"profile": profile})


@router.post("/{username}/follow")
async def follow(username: str, session: Session, user: CurrentUser) -> ProfileResponse:
    """Follow a user, so that their articles appear in your feed. Following twice is harmless."""
    profile = await service.follow(session, username=username, follower=user)
    return ProfileResponse.model_validate({"profile": profile})


@router.delete("/{username}/follow")
async def unfollow(username: str, session: Session, user: CurrentUser) -> ProfileResponse:
    """Stop following a user."""
    profile = await service.unfollow(session, username=username, follower=user)
    return ProfileResponse.model_validate({"profile": profile})
