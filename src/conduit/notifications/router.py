from typing import Annotated

from fastapi import Query, Response, status

from conduit import api
from conduit.auth.dependencies import CurrentUser
from conduit.database import ReadSession, Session
from conduit.errors import responses
from conduit.notifications import reads, service
from conduit.notifications.schemas import MarkRead, NotificationsResponse
from conduit.schemas import JSONText

router = api.router("/notifications", tags=["Notifications"])

MAX_PAGE_SIZE = 100


@router.get("", response_model=NotificationsResponse, responses=responses(401, 403, 422))
async def list_notifications(
    user: CurrentUser,
    db: ReadSession,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Notifications to skip.")] = 0,
) -> Response:
    """Your notifications, newest first: an author you follow published an article
    (`article.published`), someone commented on your article (`comment.created`), someone
    followed you (`user.followed`). `unreadCount` counts all of them, not just this page."""
    return JSONText(await reads.page(db, user_id=user.id, limit=limit, offset=offset))


@router.post("/read", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 422))
async def mark_read(body: MarkRead, user: CurrentUser, session: Session) -> Response:
    """Mark notifications read: `{"ids": ["1", "2"]}` (yours among them; at most 100) or
    `{"all": true}`."""
    ids = None if body.ids is None else [int(value) for value in body.ids]
    await service.mark_read(session, user_id=user.id, ids=ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
