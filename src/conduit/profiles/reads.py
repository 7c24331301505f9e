"""Profiles as the API shows them, rendered by the database, and the profile fragment that
articles and comments embed for their authors: one definition for every place a user appears."""

from functools import cache, partial
from typing import NewType

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    exists,
    false,
    select,
)

from conduit.auth import User
from conduit.cache import CachedRead, Document, Entry, document_of, versions
from conduit.database import Read, Reader, aggregate
from conduit.errors import NotFound
from conduit.profiles.models import Follow
from conduit.sql_json import JSONFunctions, as_text

# `{"profile": {...}}`
ProfileDocument = NewType("ProfileDocument", str)

VIEWER_ID: BindParameter[int] = bindparam("viewer_id", type_=Integer)
_USERNAME: BindParameter[str] = bindparam("username", type_=String)
# A JSON array of usernames.
USERNAMES: BindParameter[str] = bindparam("usernames", type_=String)
_FOLLOWEE_ID: BindParameter[int] = bindparam("followee_id", type_=Integer)
_AFTER: BindParameter[int] = bindparam("after", type_=Integer)
_LIMIT: BindParameter[int] = bindparam("limit", type_=Integer)


def id_of(username: str | BindParameter[str]) -> Select[int]:
    """The id of the user called `username`."""
    return select(User.id).where(User.username == username)


def following(
    viewer_id: BindParameter[int] | None, followee_id: SQLColumnExpression[int]
) -> ColumnElement[bool]:
    """Whether the viewer follows `followee_id`; false for an anonymous viewer."""
    if viewer_id is None:
        return false()
    return exists().where(Follow.follower_id == viewer_id, Follow.followee_id == followee_id)


def followed_by(viewer_id: BindParameter[int]) -> Select[int]:
    """The ids of the users the viewer follows."""
    return select(Follow.followee_id).where(Follow.follower_id == viewer_id)


def profile(j: JSONFunctions, *, viewer_id: BindParameter[int] | None) -> ColumnElement[str]:
    """The profile of the `users` row of the enclosing query, as the viewer sees it."""
    return j.object(
        username=User.username,
        bio=User.bio,
        image=User.image,
        following=j.boolean(following(viewer_id, User.id)),
    )


def followed_among(j: JSONFunctions, usernames: BindParameter[str]) -> ColumnElement[str]:
    """The JSON array of those of `usernames` whom the viewer follows."""
    rows = (
        select(User.username)
        .join(Follow, Follow.followee_id == User.id)
        .where(Follow.follower_id == VIEWER_ID, User.username.in_(j.elements(usernames)))
        .subquery()
    )
    return j.array(rows.c.username, from_=rows, order_by=[rows.c.username])


_FOLLOWED: Read[str] = Read(lambda j: select(as_text(followed_among(j, USERNAMES))))


async def followed(db: Reader, *, viewer_id: int, usernames: list[str]) -> set[str]:
    """Which of `usernames` the viewer follows."""
    if not usernames:
        return set()
    found = await aggregate(
        db, _FOLLOWED, viewer_id=viewer_id, usernames=orjson.dumps(usernames).decode()
    )
    return set(orjson.loads(found))


def _followers(j: JSONFunctions) -> Select[str]:
    rows = (
        select(Follow.follower_id)
        .where(Follow.followee_id == _FOLLOWEE_ID, Follow.follower_id > _AFTER)
        .order_by(Follow.follower_id)
        .limit(_LIMIT)
        .subquery()
    )
    ids = j.array(rows.c.follower_id, from_=rows, order_by=[rows.c.follower_id])
    return select(as_text(ids))


_FOLLOWERS: Read[str] = Read(_followers)


async def followers(db: Reader, *, user_id: int, after: int, limit: int) -> list[int]:
    """The ids of the user's followers above `after`, the first `limit` of them in id order:
    one batch of a fan-out."""
    found = await aggregate(db, _FOLLOWERS, followee_id=user_id, after=after, limit=limit)
    return list(orjson.loads(found))


@cache
def _profile_read(*, signed_in: bool) -> Read[ProfileDocument]:
    def build(j: JSONFunctions) -> Select[str]:
        document = j.object(profile=profile(j, viewer_id=VIEWER_ID if signed_in else None))
        return select(as_text(document)).where(User.username == _USERNAME)

    return Read(build)


def cached(db: Reader, *, username: str) -> CachedRead:
    """A profile, shared by every viewer; a signed-in viewer's `following` set on a copy."""

    async def build(viewer_id: int | None) -> str:
        return await get(db, username=username, viewer_id=viewer_id)

    entry = Entry(_profile_read(signed_in=False), f"profile:{username}", (versions.PROFILES,))
    return CachedRead(entry, build, partial(_for_viewer, db))


async def _for_viewer(db: Reader, document: Document, viewer_id: int) -> Document:
    """The shared profile with `following` as the viewer sees it."""
    profile = orjson.loads(document.body)
    fields = profile["profile"]
    following = await followed(db, viewer_id=viewer_id, usernames=[fields["username"]])
    fields["following"] = fields["username"] in following
    return document_of(orjson.dumps(profile))


async def get(db: Reader, *, username: str, viewer_id: int | None) -> ProfileDocument:
    read = _profile_read(signed_in=viewer_id is not None)
    document = await db.scalar(read, username=username, viewer_id=viewer_id)
    if document is None:
        raise NotFound("profile")
    return document
