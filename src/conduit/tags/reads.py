"""Tags as the API shows them, rendered by the database."""

from typing import NewType

from sqlalchemy import BindParameter, ColumnElement, Select, SQLColumnExpression, exists, select

from conduit.cache import CachedRead, Entry, versions
from conduit.database import Read, Reader, aggregate
from conduit.sql_json import JSONFunctions, as_text
from conduit.tags.models import ArticleTag, Tag

# `{"tags": [...]}`
TagsDocument = NewType("TagsDocument", str)


def articles_tagged(name: str | BindParameter[str]) -> Select[int]:
    return (
        select(ArticleTag.article_id).join(Tag, Tag.id == ArticleTag.tag_id).where(Tag.name == name)
    )


def names(j: JSONFunctions, article_id: SQLColumnExpression[int]) -> ColumnElement[str]:
    """The JSON array of an article's tag names, alphabetically."""
    rows = (
        select(Tag.name)
        .join(ArticleTag, ArticleTag.tag_id == Tag.id)
        .where(ArticleTag.article_id == article_id)
        .correlate_except(Tag, ArticleTag)
        .subquery()
    )
    return j.array(rows.c.name, from_=rows, order_by=[rows.c.name])


def _tags(j: JSONFunctions) -> Select[str]:
    in_use = select(Tag.name).where(exists().where(ArticleTag.tag_id == Tag.id)).subquery()
    tags = j.array(in_use.c.name, from_=in_use, order_by=[in_use.c.name])
    return select(as_text(j.object(tags=tags)))


_TAGS: Read[TagsDocument] = Read(_tags)


async def in_use(db: Reader) -> TagsDocument:
    """Every tag that at least one article carries, alphabetically."""
    return await aggregate(db, _TAGS)


_ENTRY = Entry(_TAGS, "tags", (versions.TAGS,))


def cached(db: Reader) -> CachedRead:
    async def build(_: int | None) -> str:
        return await in_use(db)

    return CachedRead(_ENTRY, build)
