from typing import Annotated

from fastapi import Path, Response, status

from conduit import api
from conduit.articles.dependencies import ValidArticle
from conduit.auth.dependencies import CurrentUser, OptionalCaller
from conduit.cache import NOT_MODIFIED, Cached
from conduit.comments import reads, service
from conduit.comments.schemas import CommentResponse, MultipleCommentsResponse, NewCommentRequest
from conduit.database import ReadSession, Session, SessionReader
from conduit.errors import responses
from conduit.schemas import JSONText, PathName

router = api.router("/articles/{slug}/comments", tags=["Comments"])


@router.get(
    "",
    response_model=MultipleCommentsResponse,
    responses=responses(401, 403, 404, 422) | NOT_MODIFIED,
)
async def list_comments(
    slug: PathName, db: ReadSession, caller: OptionalCaller, cache: Cached
) -> Response:
    """An article's comments, oldest first."""
    return await cache.respond(caller, reads.cached(db, slug=slug))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentResponse,
    responses=responses(401, 403, 404, 422),
)
async def add_comment(
    body: NewCommentRequest, session: Session, user: CurrentUser, article: ValidArticle
) -> Response:
    comment_id = await service.add_comment(
        session, article=article, author=user, body=body.comment.body
    )
    document = await reads.get(SessionReader(session), comment_id=comment_id, viewer_id=user.id)
    return JSONText(document, status_code=status.HTTP_201_CREATED)


@router.delete(
    "/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def delete_comment(
    comment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: Session,
    user: CurrentUser,
    article: ValidArticle,
) -> Response:
    """Delete your own comment."""
    await service.delete_comment(session, article=article, comment_id=comment_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
