"""Following and unfollowing; reading profiles is `conduit.profiles.reads`."""

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth.principal import Account
from conduit.cache import versions as cached
from conduit.database import insert
from conduit.errors import NotFound, Unprocessable
from conduit.notifications import tasks as notifications
from conduit.profiles import reads
from conduit.profiles.models import Follow


async def _id_of(session: AsyncSession, username: str) -> int:
    user_id = await session.scalar(reads.id_of(username))
    if user_id is None:
        raise NotFound("profile")
    return user_id


async def follow(session: AsyncSession, *, username: str, follower: Account) -> None:
    followee_id = await _id_of(session, username)
    if followee_id == follower.id:
        raise Unprocessable("profile", "can't follow yourself")
    followed = await session.scalar(
        insert(session, Follow)
        .values(follower_id=follower.id, followee_id=followee_id)
        .on_conflict_do_nothing()
        .returning(Follow.followee_id)
    )
    cached.changed(session, cached.follows(follower.id))
    if followed is not None:
        await notifications.followed(session, follower_id=follower.id, followee_id=followee_id)


async def unfollow(session: AsyncSession, *, username: str, follower: Account) -> None:
    followee_id = await _id_of(session, username)
    await session.execute(
        delete(Follow).where(Follow.follower_id == follower.id, Follow.followee_id == followee_id)
    )
    cached.changed(session, cached.follows(follower.id))
