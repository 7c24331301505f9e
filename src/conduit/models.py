"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from conduit.api_keys.models import ApiKey
from conduit.articles.models import Article, ArticleTotal, Favorite
from conduit.auth.models import AuthSession, PasswordResetToken, RefreshToken, User
from conduit.comments.models import Comment
from conduit.database import Base
from conduit.jobs.outbox import JobRecord, QStashDelivery
from conduit.mail import SentEmail
from conduit.notifications.models import Notification
from conduit.profiles.models import Follow
from conduit.tags.models import ArticleTag, Tag

__all__ = [
    "ApiKey",
    "Article",
    "ArticleTag",
    "ArticleTotal",
    "AuthSession",
    "Base",
    "Comment",
    "Favorite",
    "Follow",
    "JobRecord",
    "Notification",
    "PasswordResetToken",
    "QStashDelivery",
    "RefreshToken",
    "SentEmail",
    "Tag",
    "User",
]
