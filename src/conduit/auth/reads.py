"""The caller's own account, read by the database for every authenticated request."""

import uuid
from typing import NewType

from sqlalchemy import BindParameter, ColumnElement, Integer, Select, Uuid, bindparam, select

from conduit.auth.models import AuthSession, User
from conduit.database import Read, Reader
from conduit.sql_json import JSONFunctions, as_text

# `{"id": ..., "username": ..., "email": ..., "bio": ..., "image": ...}`, parsed as an `Account`
AccountDocument = NewType("AccountDocument", str)

_USER_ID: BindParameter[int] = bindparam("user_id", type_=Integer)
_SESSION_ID: BindParameter[uuid.UUID] = bindparam("session_id", type_=Uuid)


def account(j: JSONFunctions) -> ColumnElement[str]:
    """The account of the enclosing query's `users` row."""
    return j.object(
        id=User.id, username=User.username, email=User.email, bio=User.bio, image=User.image
    )


def _signed_in(j: JSONFunctions) -> Select[str]:
    return (
        select(as_text(account(j)))
        .select_from(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(User.id == _USER_ID, AuthSession.id == _SESSION_ID, AuthSession.revoked_at.is_(None))
    )


_SIGNED_IN: Read[AccountDocument] = Read(_signed_in)


async def signed_in(db: Reader, *, user_id: int, session_id: uuid.UUID) -> AccountDocument | None:
    """The account, if the sign-in session its token names is still open."""
    return await db.scalar(_SIGNED_IN, user_id=user_id, session_id=session_id)
