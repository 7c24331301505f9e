"""Articles and favorites. Other domains use the `Article` table through this module."""

from conduit.articles.models import Article

__all__ = ["Article"]
