from dataclasses import dataclass

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    SQLColumnExpression,
    delete,
    exists,
    false,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth.models import User
from conduit.database import insert
from conduit.errors import NotFound, Unprocessable
from conduit.profiles.models import Follow


@dataclass(frozen=True, slots=True)
class ProfileView:
    username: str
    bio: str | None
    image: str | None
    following: bool


def following(
    viewer_id: int | BindParameter[int] | None, followee_id: SQLColumnExpression[int]
) -> ColumnElement[bool]:
    """Whether the viewer follows `followee_id`, as a column to select alongside it."""
    if viewer_id is None:
        return false()
    return exists().where(Follow.follower_id == viewer_id, Follow.followee_id == followee_id)


async def get_profile(session: AsyncSession, *, username: str, viewer: User | None) -> ProfileView:
    row = (
        await session.execute(
            select(
                User.username,
                User.bio,
                User.image,
                following(viewer.id if viewer else None, User.id),
            ).where(User.username == username)
        )
    ).first()
    if row is None:
        raise NotFound("profile")
    return ProfileView(*row)


async def _get_user(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("profile")
    return user


async def follow(session: AsyncSession, *, username: str, follower: User) -> ProfileView:
    followee = await _get_user(session, username)
    if followee.id == follower.id:
        raise Unprocessable("profile", "can't follow yourself")
    await session.execute(
        insert(session, Follow)
        .values(follower_id=follower.id, followee_id=followee.id)
        .on_conflict_do_nothing()
    )
    return ProfileView(followee.username, followee.bio, followee.image, following=True)


async def unfollow(session: AsyncSession, *, username: str, follower: User) -> ProfileView:
    followee = await _get_user(session, username)
    await session.execute(
        delete(Follow).where(Follow.follower_id == follower.id, Follow.followee_id == followee.id)
    )
    return ProfileView(followee.username, followee.bio, followee.image, following=False)
