"""API keys for machine clients: named, scoped, optionally expiring, stored as SHA-256 hashes.

A key looks like `cdt_<43 url-safe characters>`; the `cdt_` prefix lets secret scanners
recognise a leaked one, and its first characters (`prefix`) tell keys apart in listings.
"""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.api_keys.models import ApiKey
from conduit.api_keys.schemas import NewApiKey
from conduit.auth.models import User
from conduit.auth.principal import Principal, Scope
from conduit.database import utcnow
from conduit.errors import NotFound, Unauthorized

KEY_PREFIX = "cdt_"
_SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# Recording every use would turn each read into a write; once a minute is precise enough.
_LAST_USED_PRECISION = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create(session: AsyncSession, *, user: User, new: NewApiKey) -> tuple[ApiKey, str]:
    """The stored key and its secret, which is shown this once and never again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        user_id=user.id,
        name=new.name,
        prefix=key[:_SHOWN_PREFIX_LENGTH],
        key_hash=_hash(key),
        scopes=sorted(new.scopes),
        expires_at=new.expires_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_keys(session: AsyncSession, *, user: User) -> list[ApiKey]:
    return list(
        await session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    )


async def revoke(session: AsyncSession, *, user: User, key_id: int) -> None:
    """Delete one of the user's keys; another user's key is as unknown as a missing one."""
    deleted = await session.execute(
        delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id).returning(ApiKey.id)
    )
    if deleted.scalar_one_or_none() is None:
        raise NotFound("api_key")


async def authenticate(session: AsyncSession, key: str) -> Principal:
    now = utcnow()
    row = (
        await session.execute(
            select(User, ApiKey)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(ApiKey.key_hash == _hash(key))
        )
    ).first()
    if row is None:
        raise Unauthorized("api_key")
    user, api_key = row
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("api_key", "has expired")
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == api_key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - _LAST_USED_PRECISION),
        )
        .values(last_used_at=now)
    )
    return Principal(user=user, scopes=frozenset(Scope(scope) for scope in api_key.scopes))
