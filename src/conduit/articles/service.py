import secrets
from collections.abc import Sequence

from slugify import slugify
from sqlalchemy import ColumnElement, delete, exists, false, func, select, update
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


def _document(viewer: User | None, *, with_body: bool) -> ColumnElement[str]:
    """The article as the API shows it, built as JSON by the database: author, tags, favorite
    count and the viewer's flags, in one expression over `articles` joined to `users`."""
    favorites_count = (
        select(func.count()).where(Favorite.article_id == Article.id).scalar_subquery()
    )
    favorited = (
        exists().where(Favorite.article_id == Article.id, Favorite.user_id == viewer.id)
        if viewer is not None
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
            following=json_bool(profiles_service.following(viewer, Article.author_id)),
        ),
    )


async def _page(
    session: AsyncSession,
    *,
    viewer: User | None,
    filters: Sequence[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> str:
    """`{"articles": [...], "articlesCount": n}` in one statement, newest first."""
    page = (
        select(
            _document(viewer, with_body=False).label("document"),
            Article.created_at,
            Article.id,
        )
        .join(User, User.id == Article.author_id)
        .where(*filters)
        .order_by(Article.created_at.desc(), Article.id.desc())
        .limit(limit)
        .offset(offset)
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
    result = await session.execute(
        select(as_text(json_object(articles=articles, articlesCount=count)))
    )
    return result.scalar_one()


def _user_id(username: str) -> ColumnElement[int]:
    return select(User.id).where(User.username == username).scalar_subquery()


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
    filters: list[ColumnElement[bool]] = []
    if tag is not None:
        filters.append(Article.id.in_(tags_service.articles_tagged(tag)))
    if author is not None:
        filters.append(Article.author_id == _user_id(author))
    if favorited_by is not None:
        filters.append(
            Article.id.in_(
                select(Favorite.article_id).where(Favorite.user_id == _user_id(favorited_by))
            )
        )
    return await _page(session, viewer=viewer, filters=filters, limit=limit, offset=offset)


async def feed(session: AsyncSession, *, viewer: User, limit: int, offset: int) -> str:
    followed = select(Follow.followee_id).where(Follow.follower_id == viewer.id)
    return await _page(
        session,
        viewer=viewer,
        filters=[Article.author_id.in_(followed)],
        limit=limit,
        offset=offset,
    )


async def get_json(session: AsyncSession, *, slug: str, viewer: User | None) -> str:
    """`{"article": {...}}`, built by the database."""
    document = await session.scalar(
        select(as_text(json_object(article=_document(viewer, with_body=True))))
        .select_from(Article)
        .join(User, User.id == Article.author_id)
        .where(Article.slug == slug)
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
