"""Articles as the API shows them, rendered by the database: one statement per read, returning
the finished JSON document."""

import re
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, NewType

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    exists,
    false,
    func,
    select,
)

from conduit.articles.models import Article, ArticleTotal, Favorite
from conduit.auth import User
from conduit.cache import CachedRead, Document, Entry, document_of
from conduit.cache import versions as cached
from conduit.database import Read, Reader, aggregate
from conduit.errors import NotFound
from conduit.profiles import reads as profiles_reads
from conduit.profiles.reads import VIEWER_ID
from conduit.sql_json import JSONFunctions, as_text
from conduit.tags import reads as tags_reads

# `{"article": {...}}`
ArticleDocument = NewType("ArticleDocument", str)
# `{"articles": [...], "articlesCount": n}`
ArticlePage = NewType("ArticlePage", str)


@dataclass(frozen=True, slots=True, kw_only=True)
class PageQuery:
    """A page of the article list: the filters asked for (None when not) and the page's bounds."""

    tag: str | None
    author: str | None
    # The username of a user who favorited the articles (`?favorited=`).
    favorited_by: str | None
    limit: int
    offset: int


_SLUG: BindParameter[str] = bindparam("slug", type_=String)
_TAG: BindParameter[str] = bindparam("tag", type_=String)
_AUTHOR: BindParameter[str] = bindparam("author", type_=String)
_FAVORITED_BY: BindParameter[str] = bindparam("favorited_by", type_=String)
_LIMIT: BindParameter[int] = bindparam("limit", type_=Integer)
_OFFSET: BindParameter[int] = bindparam("offset", type_=Integer)
_ARTICLE_ID: BindParameter[int] = bindparam("article_id", type_=Integer)
# A JSON array of slugs.
_SLUGS: BindParameter[str] = bindparam("slugs", type_=String)


def id_of(slug: str | BindParameter[str]) -> Select[int]:
    """The id of the article at `slug`."""
    return select(Article.id).where(Article.slug == slug)


def _article(
    j: JSONFunctions, *, viewer_id: BindParameter[int] | None, with_body: bool
) -> ColumnElement[str]:
    """The article of the enclosing query's `articles` row (joined to its author in `users`)."""
    favorites_count = (
        select(func.count()).where(Favorite.article_id == Article.id).scalar_subquery()
    )
    favorited = (
        exists().where(Favorite.article_id == Article.id, Favorite.user_id == viewer_id)
        if viewer_id is not None
        else false()
    )
    body = {"body": Article.body} if with_body else {}
    return j.object(
        slug=Article.slug,
        title=Article.title,
        description=Article.description,
        **body,
        tagList=tags_reads.names(j, Article.id),
        createdAt=j.timestamp(Article.created_at),
        updatedAt=j.timestamp(Article.updated_at),
        favorited=j.boolean(favorited),
        favoritesCount=favorites_count,
        author=profiles_reads.profile(j, viewer_id=viewer_id),
    )


@cache
def _page_read(
    *, signed_in: bool, feed: bool, tag: bool, author: bool, favorited_by: bool
) -> Read[ArticlePage]:
    """Newest first; the filters present decide the statement's shape."""
    viewer_id = VIEWER_ID if signed_in else None
    filters: list[ColumnElement[bool]] = []
    if feed:
        filters.append(Article.author_id.in_(profiles_reads.followed_by(VIEWER_ID)))
    if tag:
        filters.append(Article.id.in_(tags_reads.articles_tagged(_TAG)))
    if author:
        filters.append(Article.author_id == profiles_reads.id_of(_AUTHOR).scalar_subquery())
    if favorited_by:
        favoriter = profiles_reads.id_of(_FAVORITED_BY).scalar_subquery()
        filters.append(
            Article.id.in_(select(Favorite.article_id).where(Favorite.user_id == favoriter))
        )

    def build(j: JSONFunctions) -> Select[str]:
        # A deferred join: the page's ids from the index alone, then JSON for those rows only,
        # so that a deep page costs about what the first does.
        ids = (
            select(Article.id)
            .where(*filters)
            .order_by(Article.created_at.desc(), Article.id.desc())
            .limit(_LIMIT)
            .offset(_OFFSET)
            .subquery()
        )
        page = (
            select(
                _article(j, viewer_id=viewer_id, with_body=False).label("document"),
                Article.created_at,
                Article.id,
            )
            .select_from(ids)
            .join(Article, Article.id == ids.c.id)
            .join(User, User.id == Article.author_id)
            .subquery()
        )
        articles = j.array(
            j.document(page.c.document),
            from_=page,
            order_by=[page.c.created_at.desc(), page.c.id.desc()],
        )
        count = (
            select(func.count()).select_from(Article).where(*filters)
            if filters
            else select(ArticleTotal.count)
        ).scalar_subquery()
        return select(as_text(j.object(articles=articles, articlesCount=count)))

    return Read(build)


@cache
def _article_read(*, signed_in: bool) -> Read[ArticleDocument]:
    def build(j: JSONFunctions) -> Select[str]:
        article = _article(j, viewer_id=VIEWER_ID if signed_in else None, with_body=True)
        return (
            select(as_text(j.object(article=article)))
            .select_from(Article)
            .join(User, User.id == Article.author_id)
            .where(Article.slug == _SLUG)
        )

    return Read(build)


def _list_read(query: PageQuery, *, signed_in: bool) -> Read[ArticlePage]:
    return _page_read(
        signed_in=signed_in,
        feed=False,
        tag=query.tag is not None,
        author=query.author is not None,
        favorited_by=query.favorited_by is not None,
    )


async def page(db: Reader, *, query: PageQuery, viewer_id: int | None) -> ArticlePage:
    """Most recent articles first, optionally filtered; `articlesCount` counts them all."""
    return await aggregate(
        db,
        _list_read(query, signed_in=viewer_id is not None),
        viewer_id=viewer_id,
        tag=query.tag,
        author=query.author,
        favorited_by=query.favorited_by,
        limit=query.limit,
        offset=query.offset,
    )


async def feed(db: Reader, *, viewer_id: int, limit: int, offset: int) -> ArticlePage:
    """Most recent articles by the authors the viewer follows."""
    read = _page_read(signed_in=True, feed=True, tag=False, author=False, favorited_by=False)
    return await aggregate(db, read, viewer_id=viewer_id, limit=limit, offset=offset)


async def get(db: Reader, *, slug: str, viewer_id: int | None) -> ArticleDocument:
    document = await db.scalar(
        _article_read(signed_in=viewer_id is not None), slug=slug, viewer_id=viewer_id
    )
    if document is None:
        raise NotFound("article")
    return document


_PRESENT: Read[int] = Read(lambda _: select(Article.id).where(Article.id == _ARTICLE_ID))


async def present(db: Reader, *, article_id: int) -> bool:
    """Whether the article is there still (a job's may have been deleted since it was
    enqueued)."""
    return await db.scalar(_PRESENT, article_id=article_id) is not None


# The cache: documents as an anonymous viewer sees them, and a signed-in viewer's flags. ----


# A page that starts with no articles, as either database renders it (PostgreSQL puts spaces).
_EMPTY_PAGE = re.compile(rb'\{"articles" ?: ?\[\]')


def _has_articles(page: bytes) -> bool:
    """Whether a page is worth a cache entry: one with no articles (a tag, author or offset
    that matches nothing) is cheap to build, and could be asked for without end."""
    return _EMPTY_PAGE.match(page) is None


def cached_page(db: Reader, *, query: PageQuery) -> CachedRead:
    """A page of `page`, shared by every viewer; a signed-in viewer's flags set on a copy."""

    async def build(viewer_id: int | None) -> str:
        return await page(db, query=query, viewer_id=viewer_id)

    key = orjson.dumps(
        [query.tag, query.author, query.favorited_by, query.limit, query.offset]
    ).decode()
    names = (cached.ARTICLES, cached.PROFILES)
    entry = Entry(_list_read(query, signed_in=False), f"articles:{key}", names, keep=_has_articles)
    return CachedRead(entry, build, partial(_page_for_viewer, db))


def cached_feed(db: Reader, *, viewer_id: int, limit: int, offset: int) -> CachedRead:
    """The viewer's own feed, flags and all."""

    async def build(_: int | None) -> str:
        return await feed(db, viewer_id=viewer_id, limit=limit, offset=offset)

    read = _page_read(signed_in=True, feed=True, tag=False, author=False, favorited_by=False)
    names = (cached.ARTICLES, cached.PROFILES, cached.follows(viewer_id))
    entry = Entry(read, f"feed:{viewer_id}:{limit}:{offset}", names, keep=_has_articles)
    return CachedRead(entry, build)


def cached_article(db: Reader, *, slug: str) -> CachedRead:
    async def build(viewer_id: int | None) -> str:
        return await get(db, slug=slug, viewer_id=viewer_id)

    names = (cached.article(slug), cached.PROFILES)
    entry = Entry(_article_read(signed_in=False), f"article:{slug}", names)
    return CachedRead(entry, build, partial(_article_for_viewer, db))


def _flags(j: JSONFunctions) -> Select[str]:
    rows = (
        select(Article.slug)
        .join(Favorite, Favorite.article_id == Article.id)
        .where(Favorite.user_id == VIEWER_ID, Article.slug.in_(j.elements(_SLUGS)))
        .subquery()
    )
    favorited = j.array(rows.c.slug, from_=rows, order_by=[rows.c.slug])
    following = profiles_reads.followed_among(j, profiles_reads.USERNAMES)
    return select(as_text(j.object(favorited=favorited, following=following)))


_FLAGS: Read[str] = Read(_flags)


async def _set_flags(db: Reader, articles: list[dict[str, Any]], viewer_id: int) -> None:
    """`favorited` and `author.following` as the viewer sees them, in one statement."""
    if not articles:
        return
    slugs = [article["slug"] for article in articles]
    usernames = list({article["author"]["username"] for article in articles})
    flags = orjson.loads(
        await aggregate(
            db,
            _FLAGS,
            viewer_id=viewer_id,
            slugs=orjson.dumps(slugs).decode(),
            usernames=orjson.dumps(usernames).decode(),
        )
    )
    favorited, following = set(flags["favorited"]), set(flags["following"])
    for article in articles:
        article["favorited"] = article["slug"] in favorited
        article["author"]["following"] = article["author"]["username"] in following


async def _page_for_viewer(db: Reader, document: Document, viewer_id: int) -> Document:
    page = orjson.loads(document.body)
    await _set_flags(db, page["articles"], viewer_id)
    return document_of(orjson.dumps(page))


async def _article_for_viewer(db: Reader, document: Document, viewer_id: int) -> Document:
    article = orjson.loads(document.body)
    await _set_flags(db, [article["article"]], viewer_id)
    return document_of(orjson.dumps(article))
