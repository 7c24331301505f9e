from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from conduit.articles.dependencies import ValidArticle
from conduit.auth.dependencies import CurrentUser, OptionalUser
from conduit.comments import service
from conduit.comments.schemas import CommentResponse, MultipleCommentsResponse, NewCommentRequest
from conduit.database import Session

router = APIRouter(prefix="/articles/{slug}/comments", tags=["Comments"])


@router.get("")
async def list_comments(
    session: Session, viewer: OptionalUser, article: ValidArticle
) -> MultipleCommentsResponse:
    """An article's comments, oldest first."""
    comments = await service.list_comments(session, article=article, viewer=viewer)
    return MultipleCommentsResponse.model_validate({"comments": comments})


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_comment(
    body: NewCommentRequest, session: Session, user: CurrentUser, article: ValidArticle
) -> CommentResponse:
    comment = await service.add_comment(
        session, article=article, author=user, body=body.comment.body
    )
    return CommentResponse.model_validate({"comment": comment})


@router.delete("/{comment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_comment(
    comment_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: Session,
    user: CurrentUser,
    article: ValidArticle,
) -> Response:
    """Delete your own comment."""
    await service.delete_comment(session, article=article, comment_id=comment_id, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
