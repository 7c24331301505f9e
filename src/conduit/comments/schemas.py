from typing import Annotated

from pydantic import StringConstraints

from conduit.profiles.schemas import Profile
from conduit.schemas import NotBlank, Schema, Timestamp


class NewComment(Schema):
    body: Annotated[str, NotBlank, StringConstraints(max_length=10_000)]


class NewCommentRequest(Schema):
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
