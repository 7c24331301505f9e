"""Sign-in sessions and their rotating refresh tokens.

A session is created by every sign-in (RealWorld login or registration, or the OAuth2 password
grant) and named in every access token issued for it, so ending it ends those tokens at once.
Refresh tokens are opaque random strings stored as SHA-256 hashes; each is used once, and using
one again, once `REPLAY_GRACE` has passed since its use, ends its session (OAuth 2.0 Security BCP,
section 4.14).

Ending a user's sessions all at once (a password change or reset, logout-all) revokes their API
keys too: a key minted with a stolen session must not outlive it. And what would let a stolen
token take the account over (a new API key, a new email or password) needs a recent sign-in
(`ensure_recent`, GitHub's "sudo mode"); refreshing tokens does not count as one.
"""

import secrets
import uuid
from datetime import timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.api_keys import service as api_keys_service
from conduit.auth.models import AuthSession, RefreshToken
from conduit.auth.schemas import TokenResponse
from conduit.auth.tokens import create_access_token, digest
from conduit.config import AuthSettings
from conduit.database import follow_writes_of, utcnow
from conduit.errors import Forbidden, Unauthorized

# A used refresh token that arrives again this soon after its use is refused without ending the
# session: refreshes racing with one token (several tabs whose access tokens expired together, a
# client retrying at once) are not a leak, and the one that won must keep its session. Measured
# from each request's arrival, so time spent queueing for the database does not count.
REPLAY_GRACE = timedelta(seconds=10)


class RefreshTokenReused(Unauthorized):
    """The session is revoked, and that must stick although the request fails."""

    keeps_changes = True


async def start(session: AsyncSession, *, user_id: int) -> uuid.UUID:
    auth_session = AuthSession(id=uuid.uuid4(), user_id=user_id)
    session.add(auth_session)
    await session.flush()
    return auth_session.id


async def realworld_token(session: AsyncSession, settings: AuthSettings, *, user_id: int) -> str:
    """A new session and the long-lived access token RealWorld clients keep."""
    session_id = await start(session, user_id=user_id)
    return create_access_token(
        settings, user_id=user_id, session_id=session_id, ttl_seconds=settings.token_ttl_seconds
    )


async def _issue_pair(
    session: AsyncSession, settings: AuthSettings, *, user_id: int, session_id: uuid.UUID
) -> TokenResponse:
    refresh_token = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            session_id=session_id,
            token_hash=digest(refresh_token),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    access_token = create_access_token(
        settings,
        user_id=user_id,
        session_id=session_id,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    return TokenResponse(
        access_token=access_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh_token,
    )


async def start_oauth(
    session: AsyncSession, settings: AuthSettings, *, user_id: int
) -> TokenResponse:
    session_id = await start(session, user_id=user_id)
    return await _issue_pair(session, settings, user_id=user_id, session_id=session_id)


async def refresh(
    session: AsyncSession, settings: AuthSettings, *, refresh_token: str
) -> TokenResponse:
    """Trade a refresh token for a new pair. The claim is one atomic UPDATE, so of concurrent
    refreshes with the same token exactly one wins. The others are refused, and end the session
    only when the token had been used `REPLAY_GRACE` before they arrived: that is a replay."""
    now = utcnow()
    token_hash = digest(refresh_token)
    claimed = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.session_id)
    )
    session_id = claimed.scalar_one_or_none()
    if session_id is None:
        replayed = await session.scalar(
            select(RefreshToken.session_id).where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at < now - REPLAY_GRACE,
            )
        )
        if replayed is not None:
            await end(session, session_id=replayed)
            raise RefreshTokenReused("refresh_token")
        raise Unauthorized("refresh_token")
    user_id = await session.scalar(
        select(AuthSession.user_id).where(
            AuthSession.id == session_id, AuthSession.revoked_at.is_(None)
        )
    )
    if user_id is None:
        raise Unauthorized("refresh_token")
    return await _issue_pair(session, settings, user_id=user_id, session_id=session_id)


async def end(session: AsyncSession, *, session_id: uuid.UUID) -> None:
    ended = await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .returning(AuthSession.user_id)
    )
    user_id = ended.scalar_one_or_none()
    if user_id is not None:
        follow_writes_of(session, user_id)


async def end_all(session: AsyncSession, *, user_id: int, keep: uuid.UUID | None = None) -> None:
    """End every session of the user, except `keep` when given, and revoke all their API keys."""
    query = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    await session.execute(query.values(revoked_at=utcnow()))
    await api_keys_service.revoke_all(session, user_id=user_id)
    follow_writes_of(session, user_id)


async def ensure_recent(
    session: AsyncSession, settings: AuthSettings, *, session_id: uuid.UUID
) -> None:
    """Refuse unless the session signed in (proved the password) within `reauth_seconds`."""
    signed_in_after = utcnow() - timedelta(seconds=settings.reauth_seconds)
    recent = await session.scalar(
        select(
            exists().where(
                AuthSession.id == session_id, AuthSession.authenticated_at > signed_in_after
            )
        )
    )
    if not recent:
        raise Forbidden("session", "sign in again to do this")
