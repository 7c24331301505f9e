"""API keys as the API shows them, and as authentication reads them, rendered by the database."""

from datetime import datetime
from typing import NewType

import orjson
from pydantic import BaseModel
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    or_,
    select,
)

from conduit.api_keys.models import ApiKey
from conduit.auth import User
from conduit.auth import reads as auth_reads
from conduit.auth.principal import Account, Scope
from conduit.database import Read, Reader, UTCDateTime, aggregate
from conduit.errors import NotFound
from conduit.sql_json import JSONFunctions, as_text

# `{"apiKeys": [...]}`
ApiKeysDocument = NewType("ApiKeysDocument", str)
# `{"apiKey": {..., "key": "cdt_..."}}`, the only document that carries the secret
CreatedApiKeyDocument = NewType("CreatedApiKeyDocument", str)
# A `KeyHolder`, for authentication
KeyHolderDocument = NewType("KeyHolderDocument", str)

_USER_ID: BindParameter[int] = bindparam("user_id", type_=Integer)
_KEY_ID: BindParameter[int] = bindparam("key_id", type_=Integer)
_KEY_HASH: BindParameter[str] = bindparam("key_hash", type_=String)
_NOW: BindParameter[datetime] = bindparam("now", type_=UTCDateTime)
_STALE_BEFORE: BindParameter[datetime] = bindparam("stale_before", type_=UTCDateTime)


class KeyHolder(BaseModel):
    """The owner of a presented key, and what authentication needs to know about the key."""

    account: Account
    key_id: int
    scopes: frozenset[Scope]
    revoked: bool
    expired: bool
    # `last_used_at` is older than the precision it is kept at.
    stale: bool


def _api_key(j: JSONFunctions) -> ColumnElement[str]:
    return j.object(
        id=ApiKey.id,
        name=ApiKey.name,
        scopes=j.document(ApiKey.scopes),
        prefix=ApiKey.prefix,
        createdAt=j.timestamp(ApiKey.created_at),
        expiresAt=j.timestamp(ApiKey.expires_at),
        lastUsedAt=j.timestamp(ApiKey.last_used_at),
        revokedAt=j.timestamp(ApiKey.revoked_at),
    )


def _for_user(j: JSONFunctions) -> Select[str]:
    rows = (
        select(_api_key(j).label("document"), ApiKey.id)
        .where(ApiKey.user_id == _USER_ID)
        .subquery()
    )
    keys = j.array(j.document(rows.c.document), from_=rows, order_by=[rows.c.id])
    return select(as_text(j.object(apiKeys=keys)))


def _created(j: JSONFunctions) -> Select[str]:
    return select(as_text(j.object(apiKey=_api_key(j)))).where(ApiKey.id == _KEY_ID)


def _holder(j: JSONFunctions) -> Select[str]:
    expired = and_(ApiKey.expires_at.is_not(None), ApiKey.expires_at <= _NOW)
    stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < _STALE_BEFORE)
    holder = j.object(
        account=auth_reads.account(j),
        key_id=ApiKey.id,
        scopes=j.document(ApiKey.scopes),
        revoked=j.boolean(ApiKey.revoked_at.is_not(None)),
        expired=j.boolean(expired),
        stale=j.boolean(stale),
    )
    return (
        select(as_text(holder))
        .select_from(ApiKey)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_hash == _KEY_HASH)
    )


_FOR_USER: Read[ApiKeysDocument] = Read(_for_user)
_CREATED: Read[CreatedApiKeyDocument] = Read(_created)
_HOLDER: Read[KeyHolderDocument] = Read(_holder)


async def for_user(db: Reader, *, user_id: int) -> ApiKeysDocument:
    return await aggregate(db, _FOR_USER, user_id=user_id)


async def created(db: Reader, *, key_id: int, key: str) -> CreatedApiKeyDocument:
    """The new key's document, its secret added here rather than sent to the database: a
    statement's parameters reach logs (aiosqlite's at DEBUG, PostgreSQL's `log_statement`)."""
    document = await db.scalar(_CREATED, key_id=key_id)
    if document is None:
        raise NotFound("api_key")
    created = orjson.loads(document)
    created["apiKey"]["key"] = key
    return CreatedApiKeyDocument(orjson.dumps(created).decode())


async def holder(
    db: Reader, *, key_hash: str, now: datetime, stale_before: datetime
) -> KeyHolder | None:
    document = await db.scalar(_HOLDER, key_hash=key_hash, now=now, stale_before=stale_before)
    return None if document is None else KeyHolder.model_validate_json(document)
