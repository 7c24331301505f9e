import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from conduit.database import Base, UTCDateTime, utcnow


class Kind(StrEnum):
    ARTICLE_PUBLISHED = "article.published"
    COMMENT_CREATED = "comment.created"
    USER_FOLLOWED = "user.followed"


class Notification(Base):
    """Something a user did that concerns another. Written by the job of that event (`job_id`),
    once per recipient however often the job runs."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("job_id", "recipient_id"),
        Index(None, "recipient_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[Kind] = mapped_column(String(32))
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # What it is about, when it is about an article or a comment; deleting either deletes the
    # notifications about it.
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    comment_id: Mapped[int | None] = mapped_column(
        ForeignKey("comments.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[uuid.UUID]
    # Set on the notifications that one event may cause only once in a while (a follow, once
    # a day per follower): the second insert with the same key does nothing.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # When the event happened.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
