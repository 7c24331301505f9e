"""Setting an article's tags; reading them is `conduit.tags.reads`."""

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database import insert
from conduit.tags.models import ArticleTag, Tag


async def set_article_tags(session: AsyncSession, *, article_id: int, names: list[str]) -> None:
    await session.execute(delete(ArticleTag).where(ArticleTag.article_id == article_id))
    if not names:
        return
    await session.execute(
        insert(session, Tag).values([{"name": name} for name in names]).on_conflict_do_nothing()
    )
    tag_ids = await session.scalars(select(Tag.id).where(Tag.name.in_(names)))
    await session.execute(
        insert(session, ArticleTag).values(
            [{"article_id": article_id, "tag_id": tag_id} for tag_id in tag_ids]
        )
    )
