from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from conduit.notifications.models import Kind
from conduit.profiles.schemas import Profile
from conduit.schemas import ID_DIGITS, Input, NotNull, Schema, Timestamp, reject_blank

# What one request may mark as read by id.
MAX_IDS = 100


class ArticleRef(Schema):
    slug: str
    title: str


class CommentRef(Schema):
    id: int
    body: str


class Notification(Schema):
    id: str
    kind: Kind
    created_at: Timestamp
    read: bool
    actor: Profile
    article: ArticleRef | None
    comment: CommentRef | None


class NotificationsResponse(Schema):
    notifications: list[Notification]
    notifications_count: int
    unread_count: int


class MarkRead(Input):
    """`{"ids": [...]}` marks those of yours as read, `{"all": true}` every one of yours."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["ids"]}, {"required": ["all"]}]}
    )

    ids: Annotated[
        Annotated[
            list[Annotated[str, Field(pattern=ID_DIGITS)]],
            Field(min_length=1, max_length=MAX_IDS),
        ]
        | None,
        NotNull,
    ] = None
    all: Annotated[Literal[True] | None, NotNull] = None

    _not_null = field_validator("ids", "all", mode="before")(reject_blank)

    @model_validator(mode="after")
    def ids_or_all(self) -> "MarkRead":
        if (self.ids is None) == (self.all is None):
            raise ValueError('send either "ids" or "all": true')
        return self
