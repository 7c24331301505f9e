"""Adding and deleting comments; reading them is `conduit.comments.reads`."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth.principal import Account
from conduit.comments.models import Comment
from conduit.database import utcnow
from conduit.errors import Forbidden, NotFound


async def add_comment(session: AsyncSession, *, article_id: int, author: Account, body: str) -> int:
    now = utcnow()
    comment = Comment(
        body=body, article_id=article_id, author_id=author.id, created_at=now, updated_at=now
    )
    session.add(comment)
    await session.flush()
    return comment.id


async def delete_comment(
    session: AsyncSession, *, article_id: int, comment_id: int, user: Account
) -> None:
    author_id = await session.scalar(
        select(Comment.author_id).where(Comment.id == comment_id, Comment.article_id == article_id)
    )
    if author_id is None:
        raise NotFound("comment")
    if author_id != user.id:
        raise Forbidden("comment")
    await session.execute(delete(Comment).where(Comment.id == comment_id))
