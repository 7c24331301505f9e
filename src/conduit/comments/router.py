from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from conduit.articles.dependencies import ValidArticle
from conduit.auth.dependencies import CurrentUser, OptionalUser
from conduit.comments import reads, service
from conduit.comments.schemas import CommentResponse, MultipleCommentsResponse, NewCommentRequest
from conduit.database import ReadSession, Session, SessionReader
from conduit.errors import responses
from conduit.schemas import JSONText

router = APIRouter(prefix="/articles/{slug}/comments", tags=["Comments"], responses=responses(429))


@router.get("", response_model=MultipleCommentsResponse, responses=responses(401, 403, 404, 422))
async def list_comments(slug: str, db: ReadSession, viewer: OptionalUser) -> Response:
    """An article's comments, oldest first."""
    viewer_id = viewer.id if viewer else None
    return JSONText(await reads.list_for_article(db, slug=slug, viewer_id=viewer_id))


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
        session, article_id=article.id, author=user, body=body.comment.body
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
    await service.delete_comment(session, article_id=article.id, comment_id=comment_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
