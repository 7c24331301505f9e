"""API keys for machine clients: named, scoped, optionally expiring, stored as SHA-256 hashes.

A key looks like `cdt_<43 url-safe characters>`; the `cdt_` prefix lets secret scanners
recognise a leaked one, and its first characters (`prefix`) tell keys apart in listings.
"""

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.api_keys import reads
from conduit.api_keys.models import ApiKey
from conduit.api_keys.reads import KeyHolder
from conduit.api_keys.schemas import NewApiKey
from conduit.auth.tokens import digest
from conduit.database import Reader, utcnow
from conduit.errors import NotFound, Unauthorized

KEY_PREFIX = "cdt_"
_SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 8
# Recording every use would turn each read into a write; once a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)


async def create(session: AsyncSession, *, user_id: int, new: NewApiKey) -> tuple[int, str]:
    """The new key's id and its secret, which is shown this once and never again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        user_id=user_id,
        name=new.name,
        prefix=key[:_SHOWN_PREFIX_LENGTH],
        key_hash=digest(key),
        scopes=sorted(new.scopes),
        expires_at=new.expires_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key.id, key


async def revoke_all(session: AsyncSession, *, user_id: int) -> None:
    """Stop every key of the user, kept in the list with the time it stopped."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke(session: AsyncSession, *, user_id: int, key_id: int) -> None:
    """Delete one of the user's keys; another user's key is as unknown as a missing one."""
    deleted = await session.execute(
        delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id).returning(ApiKey.id)
    )
    if deleted.scalar_one_or_none() is None:
        raise NotFound("api_key")


async def authenticate(db: Reader, key: str, *, now: datetime) -> KeyHolder:
    holder = await reads.holder(
        db, key_hash=digest(key), now=now, stale_before=now - LAST_USED_PRECISION
    )
    if holder is None:
        raise Unauthorized("api_key")
    if holder.revoked:
        raise Unauthorized("api_key", "has been revoked")
    if holder.expired:
        raise Unauthorized("api_key", "has expired")
    return holder


async def record_use(session: AsyncSession, *, key_id: int, now: datetime) -> None:
    """Set `last_used_at`, unless a concurrent request already has within the precision."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_PRECISION),
        )
        .values(last_used_at=now)
    )
