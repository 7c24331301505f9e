from typing import Annotated

from pydantic import Field

from conduit.profiles.schemas import Profile
from conduit.schemas import NOT_BLANK_TEXT, Input, NotBlank, Schema, Timestamp


class NewComment(Input):
    body: Annotated[str, Field(max_length=10_000, pattern=NOT_BLANK_TEXT), NotBlank]


class NewCommentRequest(Input):
    comment: NewComment


class Comment(Schema):
    id: int
    created_at: Timestamp
    updated_at: Timestamp
    body: str
    author: Profile


class CommentResponse(Schema):
    comment: Comment


class MultipleCommentsResponse(Schema):
    comments: list[Comment]
