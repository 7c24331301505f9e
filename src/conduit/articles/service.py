import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from slugify import slugify
from sqlalchemy import ColumnElement, Row, Select, delete, exists, false, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles.models import Article, Favorite
from conduit.articles.schemas import NewArticle, UpdateArticle
from conduit.auth.models import User
from conduit.database import insert, utcnow
from conduit.errors import Conflict, Forbidden, NotFound
from conduit.profiles import service as profiles_service
from conduit.profiles.models import Follow
from conduit.profiles.service import ProfileView
from conduit.tags import service as tags_service

SLUG_MAX_LENGTH = 100
_SLUG_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class ArticleView:
    slug: str
    title: str
    description: str
    body: str | None
    tag_list: list[str]
    created_at: datetime
    updated_at: datetime
    favorited: bool
    favorites_count: int
    author: ProfileView


@dataclass(frozen=True, slots=True)
class ArticlePage:
    articles: list[ArticleView]
    articles_count: int


def _select_views(viewer: User | None, *, with_body: bool) -> Select[tuple[object, ...]]:
    """Everything an article shows, in one statement: author, counts and the viewer's flags."""
    favorites_count = (
        select(func.count()).where(Favorite.article_id == Article.id).scalar_subquery()
    )
    favorited = (
        exists().where(Favorite.article_id == Article.id, Favorite.user_id == viewer.id)
        if viewer is not None
        else false()
    )
    return select(
        Article.id,
        Article.slug,
        Article.title,
        Article.description,
        Article.body if with_body else null().label("body"),
        Article.created_at,
        Article.updated_at,
        favorited.label("favorited"),
        favorites_count.label("favorites_count"),
        User.username,
        User.bio,
        User.image,
        profiles_service.following(viewer, Article.author_id).label("following"),
    ).join(User, User.id == Article.author_id)


async def _views(
    session: AsyncSession, rows: Sequence[Row[tuple[object, ...]]]
) -> list[ArticleView]:
    tag_names = await tags_service.names_by_article(session, [row.id for row in rows])
    return [
        ArticleView(
            slug=row.slug,
            title=row.title,
            description=row.description,
            body=row.body,
            tag_list=tag_names.get(row.id, []),
            created_at=row.created_at,
            updated_at=row.updated_at,
            favorited=row.favorited,
            favorites_count=row.favorites_count,
            author=ProfileView(row.username, row.bio, row.image, row.following),
        )
        for row in rows
    ]


async def _page(
    session: AsyncSession,
    *,
    viewer: User | None,
    filters: Sequence[ColumnElement[bool]],
    limit: int,
    offset: int,
) -> ArticlePage:
    count = await session.scalar(select(func.count()).select_from(Article).where(*filters))
    rows = (
        await session.execute(
            _select_views(viewer, with_body=False)
            .where(*filters)
            .order_by(Article.created_at.desc(), Article.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return ArticlePage(await _views(session, rows), count or 0)


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
) -> ArticlePage:
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


async def feed(session: AsyncSession, *, viewer: User, limit: int, offset: int) -> ArticlePage:
    followed = select(Follow.followee_id).where(Follow.follower_id == viewer.id)
    return await _page(
        session,
        viewer=viewer,
        filters=[Article.author_id.in_(followed)],
        limit=limit,
        offset=offset,
    )


async def get_view(session: AsyncSession, *, slug: str, viewer: User | None) -> ArticleView:
    row = (
        await session.execute(_select_views(viewer, with_body=True).where(Article.slug == slug))
    ).first()
    if row is None:
        raise NotFound("article")
    (view,) = await _views(session, [row])
    return view


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
