from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import Select, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database import insert
from conduit.tags.models import ArticleTag, Tag


def articles_tagged(name: str) -> Select[int]:
    return (
        select(ArticleTag.article_id).join(Tag, Tag.id == ArticleTag.tag_id).where(Tag.name == name)
    )


async def list_tags(session: AsyncSession) -> list[str]:
    """Every tag that at least one article carries, by name."""
    in_use = exists().where(ArticleTag.tag_id == Tag.id)
    return list(await session.scalars(select(Tag.name).where(in_use).order_by(Tag.name)))


async def names_by_article(
    session: AsyncSession, article_ids: Collection[int]
) -> dict[int, list[str]]:
    """Each article's tag names in alphabetical order, in one query for the whole page."""
    if not article_ids:
        return {}
    rows = await session.execute(
        select(ArticleTag.article_id, Tag.name)
        .join(Tag, Tag.id == ArticleTag.tag_id)
        .where(ArticleTag.article_id.in_(article_ids))
        .order_by(ArticleTag.article_id, Tag.name)
    )
    names: defaultdict[int, list[str]] = defaultdict(list)
    for article_id, name in rows:
        names[article_id].append(name)
    return names


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
