from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles.models import Article
from conduit.auth.models import User
from conduit.comments.models import Comment
from conduit.database import utcnow
from conduit.errors import Forbidden, NotFound
from conduit.profiles import service as profiles_service
from conduit.profiles.service import ProfileView


@dataclass(frozen=True, slots=True)
class CommentView:
    id: int
    body: str
    created_at: datetime
    updated_at: datetime
    author: ProfileView


async def list_comments(
    session: AsyncSession, *, article: Article, viewer: User | None
) -> list[CommentView]:
    """Oldest first, in one query with each author's profile."""
    rows = await session.execute(
        select(
            Comment.id,
            Comment.body,
            Comment.created_at,
            Comment.updated_at,
            User.username,
            User.bio,
            User.image,
            profiles_service.following(viewer.id if viewer else None, Comment.author_id),
        )
        .join(User, User.id == Comment.author_id)
        .where(Comment.article_id == article.id)
        .order_by(Comment.id)
    )
    return [
        CommentView(id_, body, created_at, updated_at, ProfileView(username, bio, image, following))
        for id_, body, created_at, updated_at, username, bio, image, following in rows
    ]


async def add_comment(
    session: AsyncSession, *, article: Article, author: User, body: str
) -> CommentView:
    now = utcnow()
    comment = Comment(
        body=body, article_id=article.id, author_id=author.id, created_at=now, updated_at=now
    )
    session.add(comment)
    await session.flush()
    return CommentView(
        comment.id,
        comment.body,
        comment.created_at,
        comment.updated_at,
        ProfileView(author.username, author.bio, author.image, following=False),
    )


async def delete_comment(
    session: AsyncSession, *, article: Article, comment_id: int, user: User
) -> None:
    comment = await session.scalar(
        select(Comment).where(Comment.id == comment_id, Comment.article_id == article.id)
    )
    if comment is None:
        raise NotFound("comment")
    if comment.author_id != user.id:
        raise Forbidden("comment")
    await session.execute(delete(Comment).where(Comment.id == comment.id))
