from functools import cache

from sqlalchemy import (
    BindParameter,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    delete,
    exists,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database import insert
from conduit.sql_json import as_text, json_array_agg, json_object
from conduit.tags.models import ArticleTag, Tag


def articles_tagged(name: str | BindParameter[str]) -> Select[int]:
    return (
        select(ArticleTag.article_id).join(Tag, Tag.id == ArticleTag.tag_id).where(Tag.name == name)
    )


def names_json(article_id: SQLColumnExpression[int]) -> ScalarSelect[str]:
    """The JSON array of an article's tag names, alphabetically, for its JSON document."""
    names = (
        select(Tag.name)
        .join(ArticleTag, ArticleTag.tag_id == Tag.id)
        .where(ArticleTag.article_id == article_id)
        .order_by(Tag.name)
        .correlate_except(Tag, ArticleTag)
        .subquery()
    )
    return select(json_array_agg(names.c.name, names.c.name)).scalar_subquery()


@cache
def _tags_statement() -> Select[str]:
    in_use = (
        select(Tag.name)
        .where(exists().where(ArticleTag.tag_id == Tag.id))
        .order_by(Tag.name)
        .subquery()
    )
    tags = select(json_array_agg(in_use.c.name, in_use.c.name)).scalar_subquery()
    return select(as_text(json_object(tags=tags)))


async def list_tags_json(session: AsyncSession) -> str:
    """`{"tags": [...]}`: every tag that at least one article carries, alphabetically."""
    return (await session.execute(_tags_statement())).scalar_one()


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
