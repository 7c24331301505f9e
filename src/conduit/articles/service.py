"""Writing articles and favorites; reading them is `conduit.articles.reads`."""

import secrets

from slugify import slugify
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.articles.models import Article, ArticleTotal, Favorite
from conduit.articles.schemas import NewArticle, UpdateArticle
from conduit.auth.principal import Account
from conduit.cache import versions as cached
from conduit.database import insert, utcnow
from conduit.errors import Conflict, Forbidden
from conduit.notifications import tasks as notifications
from conduit.tags import service as tags_service

SLUG_MAX_LENGTH = 100
_SLUG_ATTEMPTS = 3


async def get_by_slug(session: AsyncSession, slug: str) -> Article | None:
    return await session.scalar(select(Article).where(Article.slug == slug))


# The path of the feed, which no article's slug may take.
FEED = "feed"


def _slug_candidates(title: str) -> list[str]:
    base = slugify(title, max_length=SLUG_MAX_LENGTH, word_boundary=True) or "article"
    suffixed = [f"{base}-{secrets.token_hex(4)}" for _ in range(_SLUG_ATTEMPTS - 1)]
    # /api/articles/feed is the feed: an article titled "Feed" takes a suffix from the start.
    return suffixed if base == FEED else [base, *suffixed]


async def create(session: AsyncSession, *, author: Account, new: NewArticle) -> str:
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
            cached.changed(session, cached.ARTICLES, cached.TAGS, cached.article(slug))
            await notifications.published(session, article_id=article_id, author_id=author.id)
            return slug
    raise Conflict("slug")


def _ensure_author(article: Article, user: Account) -> None:
    if article.author_id != user.id:
        raise Forbidden("article")


async def update_article(
    session: AsyncSession, *, article: Article, editor: Account, changes: UpdateArticle
) -> None:
    _ensure_author(article, editor)
    values = changes.model_dump(include={"title", "description", "body"}, exclude_unset=True)
    await session.execute(
        update(Article).where(Article.id == article.id).values(**values, updated_at=utcnow())
    )
    if changes.tag_list is not None:
        await tags_service.set_article_tags(session, article_id=article.id, names=changes.tag_list)
        cached.changed(session, cached.TAGS)
    cached.changed(session, cached.ARTICLES, cached.article(article.slug))


async def delete_article(session: AsyncSession, *, article: Article, user: Account) -> None:
    _ensure_author(article, user)
    await session.execute(delete(Article).where(Article.id == article.id))
    cached.changed(
        session,
        cached.ARTICLES,
        cached.TAGS,
        cached.article(article.slug),
        cached.comments(article.slug),
    )


async def favorite(session: AsyncSession, *, article: Article, user: Account) -> None:
    await session.execute(
        insert(session, Favorite)
        .values(user_id=user.id, article_id=article.id)
        .on_conflict_do_nothing()
    )
    cached.changed(session, cached.ARTICLES, cached.article(article.slug))


async def unfavorite(session: AsyncSession, *, article: Article, user: Account) -> None:
    await session.execute(
        delete(Favorite).where(Favorite.user_id == user.id, Favorite.article_id == article.id)
    )
    cached.changed(session, cached.ARTICLES, cached.article(article.slug))


async def recount_total(session: AsyncSession) -> tuple[int, int]:
    """Count the articles again into the total the unfiltered `articlesCount` reads, and return
    the total before and after: how a total that drifted is put right (`conduit recount`).

    Safe while articles are written. Locking the total's row first waits for every transaction
    that has already changed it (its articles are then committed) and holds back the triggers of
    those that have not (their articles, uncommitted, are not counted; their triggers add them to
    the new total once this commits). The count is then a statement of its own, whose snapshot
    (PostgreSQL's READ COMMITTED takes one per statement) holds every article committed before
    the lock. A single `UPDATE ... SET count = (SELECT count(*) ...)` would not do: when it waits
    for the row, it writes the count taken before the wait. On SQLite the transaction holds the
    database's write lock from its start.
    """
    before = (await session.execute(select(ArticleTotal.count).with_for_update())).scalar_one()
    recounted = await session.execute(
        update(ArticleTotal)
        .values(count=select(func.count()).select_from(Article).scalar_subquery())
        .returning(ArticleTotal.count)
    )
    after = recounted.scalar_one()
    if after != before:
        cached.changed(session, cached.ARTICLES)
    return before, after
