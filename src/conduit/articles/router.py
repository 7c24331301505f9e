from typing import Annotated

from fastapi import Query, Response, status
from starlette.convertors import Convertor, register_url_convertor

from conduit import api
from conduit.articles import reads, service
from conduit.articles.dependencies import ValidArticle
from conduit.articles.schemas import (
    ArticleResponse,
    MultipleArticlesResponse,
    NewArticleRequest,
    UpdateArticleRequest,
)
from conduit.auth.dependencies import CallerSignedIn, CurrentUser, OptionalCaller
from conduit.cache import NOT_MODIFIED, Cached
from conduit.database import ReadSession, Session, SessionReader
from conduit.errors import responses
from conduit.schemas import ANY_TEXT, JSONText, PathName

router = api.router("/articles", tags=["Articles"])


class _ArticleSlug(Convertor[str]):
    """An article's slug in a path: any segment but `feed`, which is the feed's path whatever
    the method (PUT /api/articles/feed is a 405, not a search for an article)."""

    regex = f"(?!{service.FEED}$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("article_slug", _ArticleSlug())

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
# Deep enough to page through 10,000 articles at 100 a page (docs/decisions.md); a deeper page
# is a 422, not a scan of the table.
MAX_OFFSET = 10_000
Offset = Annotated[
    int,
    Query(ge=0, le=MAX_OFFSET, description=f"Articles to skip, at most {MAX_OFFSET:,}."),
]
Filter = Annotated[str | None, Query(max_length=255, pattern=ANY_TEXT)]

_CHANGE = responses(401, 403, 404, 422)
_READ = responses(401, 403, 422) | NOT_MODIFIED
_READ_ONE = responses(401, 403, 404, 422) | NOT_MODIFIED


@router.get("", response_model=MultipleArticlesResponse, responses=_READ)
async def list_articles(
    *,
    db: ReadSession,
    caller: OptionalCaller,
    cache: Cached,
    tag: Filter = None,
    author: Filter = None,
    favorited: Filter = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Response:
    """Most recent articles first, optionally filtered by tag, author or the username of a user
    who favorited them. `articlesCount` is the total before paging. Items carry no `body`."""
    query = reads.PageQuery(
        tag=tag, author=author, favorited_by=favorited, limit=limit, offset=offset
    )
    return await cache.respond(caller, reads.cached_page(db, query=query))


@router.get("/feed", response_model=MultipleArticlesResponse, responses=_READ)
async def feed(
    db: ReadSession,
    caller: CallerSignedIn,
    cache: Cached,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Response:
    """Most recent articles by the users you follow."""
    viewer_id = caller.principal.user.id
    read = reads.cached_feed(db, viewer_id=viewer_id, limit=limit, offset=offset)
    return await cache.respond(caller, read)


@router.get("/{slug:article_slug}", response_model=ArticleResponse, responses=_READ_ONE)
async def get_article(
    slug: PathName, db: ReadSession, caller: OptionalCaller, cache: Cached
) -> Response:
    return await cache.respond(caller, reads.cached_article(db, slug=slug))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ArticleResponse,
    responses=responses(401, 403, 409, 422),
)
async def create_article(body: NewArticleRequest, session: Session, user: CurrentUser) -> Response:
    """Publish an article. Its slug comes from the title; a title already in use gets a suffix."""
    slug = await service.create(session, author=user, new=body.article)
    document = await reads.get(SessionReader(session), slug=slug, viewer_id=user.id)
    return JSONText(document, status_code=status.HTTP_201_CREATED)


@router.put("/{slug:article_slug}", response_model=ArticleResponse, responses=_CHANGE)
async def update_article(
    body: UpdateArticleRequest, session: Session, user: CurrentUser, article: ValidArticle
) -> Response:
    """Change your own article. The slug stays the same when the title changes, so links to the
    article keep working."""
    await service.update_article(session, article=article, editor=user, changes=body.article)
    return JSONText(await reads.get(SessionReader(session), slug=article.slug, viewer_id=user.id))


@router.delete(
    "/{slug:article_slug}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def delete_article(session: Session, user: CurrentUser, article: ValidArticle) -> Response:
    """Delete your own article, with its comments and favorites."""
    await service.delete_article(session, article=article, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{slug}/favorite", response_model=ArticleResponse, responses=responses(401, 403, 404, 422)
)
async def favorite_article(session: Session, user: CurrentUser, article: ValidArticle) -> Response:
    """Favorite an article. Favoriting twice is harmless."""
    await service.favorite(session, article=article, user=user)
    return JSONText(await reads.get(SessionReader(session), slug=article.slug, viewer_id=user.id))


@router.delete(
    "/{slug}/favorite", response_model=ArticleResponse, responses=responses(401, 403, 404, 422)
)
async def unfavorite_article(
    session: Session, user: CurrentUser, article: ValidArticle
) -> Response:
    await service.unfavorite(session, article=article, user=user)
    return JSONText(await reads.get(SessionReader(session), slug=article.slug, viewer_id=user.id))
