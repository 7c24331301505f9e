import secrets
from functools import cache

from slugify import slugify
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    String,
    bindparam,
    delete,
    exists,
    false,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles.models import Article, ArticleTotal, Favorite
from conduit.articles.schemas import NewArticle, UpdateArticle
from conduit.auth.models import User
from conduit.database import insert, utcnow
from conduit.errors import Conflict, Forbidden, NotFound
from conduit.profiles import service as profiles_service
from conduit.profiles.models import Follow
from conduit.sql_json import (
    as_text,
    iso_timestamp,
    json_array_agg,
    json_bool,
    json_document,
    json_object,
)
from conduit.tags import service as tags_service

SLUG_MAX_LENGTH = 100
_SLUG_ATTEMPTS = 3


# The reads are built once per shape and cached: compiling SQL per request cost more CPU than
# running it. Per-request values travel as these bound parameters.
_VIEWER_ID = bindparam("viewer_id", type_=Integer)
_SLUG = bindparam("slug", type_=String)
_TAG = bindparam("tag", type_=String)
_AUTHOR = bindparam("author", type_=String)
_FAVORITED_BY = bindparam("favorited_by", type_=String)
_LIMIT = bindparam("limit", type_=Integer)
_OFFSET = bindparam("offset", type_=Integer)


def _document(*, signed_in: bool, with_body: bool) -> ColumnElement[str]:
    """The article as the API shows it, built as JSON by the database: author, tags, favorite
    count and the viewer's flags, in one expression over `articles` joined to `users`."""
    viewer_id = _VIEWER_ID if signed_in else None
    favorites_count = (
        select(func.count()).where(Favorite.article_id == Article.id).scalar_subquery()
    )
    favorited = (
        exists().where(Favorite.article_id == Article.id, Favorite.user_id == viewer_id)
        if signed_in
        else false()
    )
    body = {"body": Article.body} if with_body else {}
    return json_object(
        slug=Article.slug,
        title=Article.title,
        description=Article.description,
        **body,
        tagList=tags_service.names_json(Article.id),
        createdAt=iso_timestamp(Article.created_at),
        updatedAt=iso_timestamp(Article.updated_at),
        favorited=json_bool(favorited),
        favoritesCount=favorites_count,
        author=json_object(
            username=User.username,
            bio=User.bio,
            image=User.image,
            following=json_bool(profiles_service.following(viewer_id, Article.author_id)),
        ),
    )


def _user_id(username: BindParameter[str]) -> ScalarSelect[int]:
    return select(User.id).where(User.username == username).scalar_subquery()


@cache
def _page_statement(
    *, signed_in: bool, feed: bool, tag: bool, author: bool, favorited_by: bool
) -> Select[str]:
    """`{"articles": [...], "articlesCount": n}` in one statement, newest first."""
    filters: list[ColumnElement[bool]] = []
    if feed:
        followed = select(Follow.followee_id).where(Follow.follower_id == _VIEWER_ID)
        filters.append(Article.author_id.in_(followed))
    if tag:
        filters.append(Article.id.in_(tags_service.articles_tagged(_TAG)))
    if author:
        filters.append(Article.author_id == _user_id(_AUTHOR))
    if favorited_by:
        favorites = select(Favorite.article_id).where(Favorite.user_id == _user_id(_FAVORITED_BY))
        filters.append(Article.id.in_(favorites))
    page = (
        select(
            _document(signed_in=signed_in, with_body=False).label("document"),
            Article.created_at,
            Article.id,
        )
        .join(User, User.id == Article.author_id)
        .where(*filters)
        .order_by(Article.created_at.desc(), Article.id.desc())
        .limit(_LIMIT)
        .offset(_OFFSET)
        .subquery()
    )
    newest_first = (page.c.created_at.desc(), page.c.id.desc())
    articles = select(
        json_array_agg(json_document(page.c.document), *newest_first)
    ).scalar_subquery()
    count = (
        select(func.count()).select_from(Article).where(*filters)
        if filters
        else select(ArticleTotal.count)
    ).scalar_subquery()
    return select(as_text(json_object(articles=articles, articlesCount=count)))


@cache
def _article_statement(*, signed_in: bool) -> Select[str]:
    """`{"article": {...}}` for the article named `slug`."""
    return (
        select(as_text(json_object(article=_document(signed_in=signed_in, with_body=True))))
        .select_from(Article)
        .join(User, User.id == Article.author_id)
        .where(Article.slug == _SLUG)
    )


async def list_articles(
    session: AsyncSession,
    *,
    viewer: User | None,
    tag: str | None,
    author: str | None,
    favorited_by: str | None,
    limit: int,
    offset: int,
) -> str:
    statement = _page_statement(
        signed_in=viewer is not None,
        feed=False,
        tag=tag is not None,
        author=author is not None,
        favorited_by=favorited_by is not None,
    )
    parameters = {
        "viewer_id": viewer.id if viewer else None,
        "tag": tag,
        "author": author,
        "favorited_by": favorited_by,
        "limit": limit,
        "offset": offset,
    }
    return (await session.execute(statement, parameters)).scalar_one()


async def feed(session: AsyncSession, *, viewer: User, limit: int, offset: int) -> str:
    statement = _page_statement(
        signed_in=True, feed=True, tag=False, author=False, favorited_by=False
    )
    parameters = {"viewer_id": viewer.id, "limit": limit, "offset": offset}
    return (await session.execute(statement, parameters)).scalar_one()


async def get_json(session: AsyncSession, *, slug: str, viewer: User | None) -> str:
    """`{"article": {...}}`, built by the database."""
    statement = _article_statement(signed_in=viewer is not None)
    document = await session.scalar(
        statement, {"slug": slug, "viewer_id": viewer.id if viewer else None}
    )
    if document is None:
        raise NotFound("article")
    return document


async def get_by_slug(session: AsyncSession, slug: str) -> Article | None:
    return await session.scalar(select(Article).where(Article.slug == slug))


def _slug_candidates(title: str) -> list[str]:
    base = slugify(title, max_length=SLUG_MAX_LENGTH, word_boundary=True) or "article"
    return [base] + [f"{base}-{secrets.token_hex(4)}" for _ in range(_SLUG_ATTEMPTS - 1)]


async def create(session: AsyncSession, *, author: User, new: NewArticle) -> str:
    """Insert the article under the first free slug and return that slug.

    A duplicate title gets a random suffix; `ON CONFLICT DO NOTHING` makes the check and the
    insert one atomic step, so concurrent identical titles still end with distinct slugs.
    """
    now = utcnow()
    for slug in _slug_candidates(new.title):
        article_id = await session.scalar(
            insert(session, Article)
            .values(
                slug=slug,
                title=new.title,
                description=new.description,
                body=new.body,
                author_id=author.id,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Article.slug])
            .returning(Article.id)
        )
        if article_id is not None:
            await session.execute(update(ArticleTotal).values(count=ArticleTotal.count + 1))
            await tags_service.set_article_tags(session, article_id=article_id, names=new.tag_list)
            return slug
    raise Conflict("slug")


def _ensure_author(article: Article, user: User) -> None:
    if article.author_id != user.id:
        raise Forbidden("article")


async def update_article(
    session: AsyncSession, *, article: Article, editor: User, changes: UpdateArticle
) -> None:
    _ensure_author(article, editor)
    values = changes.model_dump(include={"title", "description", "body"}, exclude_unset=True)
    await session.execute(
        update(Article).where(Article.id == article.id).values(**values, updated_at=utcnow())
    )
    if changes.tag_list is not None:
        await tags_service.set_article_tags(session, article_id=article.id, names=changes.tag_list)


async def delete_article(session: AsyncSession, *, article: Article, user: User) -> None:
    _ensure_author(article, user)
    await session.execute(delete(Article).where(Article.id == article.id))
    await session.execute(update(ArticleTotal).values(count=ArticleTotal.count - 1))


async def favorite(session: AsyncSession, *, article: Article, user: User) -> None:
    await session.execute(
        insert(session, Favorite)
        .values(user_id=user.id, article_id=article.id)
        .on_conflict_do_nothing()
    )


async def unfavorite(session: AsyncSession, *, article: Article, user: User) -> None:
    await session.execute(
        delete(Favorite).where(Favorite.user_id == user.id, Favorite.article_id == article.id)
    )
