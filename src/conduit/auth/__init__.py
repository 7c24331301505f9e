"""Users and how they authenticate. Other domains use the `User` table through this module."""

from conduit.auth.models import User

__all__ = ["User"]
