"""Adding and deleting comments; reading them is `conduit.comments.reads`."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles import Article
from conduit.auth.principal import Account
from conduit.cache import versions as cached
from conduit.comments.models import Comment
from conduit.database import utcnow
from conduit.errors import Forbidden, NotFound
from conduit.notifications import tasks as notifications


async def add_comment(
    session: AsyncSession, *, article: Article, author: Account, body: str
) -> int:
    now = utcnow()
    comment = Comment(
        body=body, article_id=article.id, author_id=author.id, created_at=now, updated_at=now
    )
    session.add(comment)
    await session.flush()
    cached.changed(session, cached.comments(article.slug))
    await notifications.commented(session, comment_id=comment.id)
    return comment.id


async def delete_comment(
    session: AsyncSession, *, article: Article, comment_id: int, user: Account
) -> None:
    author_id = await session.scalar(
        select(Comment.author_id).where(Comment.id == comment_id, Comment.article_id == article.id)
    )
    if author_id is None:
        raise NotFound("comment")
    if author_id != user.id:
        raise Forbidden("comment")
    await session.execute(delete(Comment).where(Comment.id == comment_id))
    cached.changed(session, cached.comments(article.slug))
