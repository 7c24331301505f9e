"""Marking notifications read; writing them is the jobs' (`conduit.notifications.tasks`)."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.database import utcnow
from conduit.notifications.models import Notification


async def mark_read(session: AsyncSession, *, user_id: int, ids: list[int] | None) -> None:
    """Mark those of `ids` that are the user's as read, or, with no ids, all of the user's.
    Ids of other users' notifications, or of none, change nothing."""
    query = update(Notification).where(
        Notification.recipient_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    await session.execute(query.values(read_at=utcnow()))
