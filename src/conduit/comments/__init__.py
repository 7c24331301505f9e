"""Comments on articles. Other domains use the `Comment` table through this module."""

from conduit.comments.models import Comment

__all__ = ["Comment"]
