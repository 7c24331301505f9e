from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth import sessions, tasks
from conduit.auth.models import User
from conduit.auth.passwords import PasswordHasher
from conduit.auth.principal import Principal
from conduit.auth.schemas import NewUser, UpdateUser
from conduit.cache import versions as cached
from conduit.config import AuthSettings
from conduit.errors import Conflict, Forbidden
from conduit.ratelimit.limiter import SignInAttempts


async def _ensure_unique(
    session: AsyncSession, *, username: str | None, email: str | None, exclude_id: int | None
) -> None:
    """Raise `Conflict` naming the field already taken, username first, as the suite expects.
    A username is taken by any that differs from it only by case."""
    conditions = []
    if username is not None:
        conditions.append(func.lower(User.username) == username.lower())
    if email is not None:
        conditions.append(User.email == email)
    if not conditions:
        return
    query = select(User.username, User.email).where(or_(*conditions))
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    for taken_username, taken_email in await session.execute(query):
        if username is not None and taken_username.lower() == username.lower():
            raise Conflict("username")
        if taken_email == email:
            raise Conflict("email")


async def _flush_unique(session: AsyncSession, user: User, *, exclude_id: int | None) -> None:
    """Flush inside a savepoint so that losing a race to a concurrent registration still yields
    the right 409 rather than a failed transaction."""
    username, email = user.username, user.email
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        await _ensure_unique(session, username=username, email=email, exclude_id=exclude_id)
        raise


async def register(session: AsyncSession, hasher: PasswordHasher, *, new_user: NewUser) -> User:
    await _ensure_unique(session, username=new_user.username, email=new_user.email, exclude_id=None)
    user = User(
        username=new_user.username,
        email=new_user.email,
        password_hash=await hasher.hash(new_user.password),
    )
    await _flush_unique(session, user, exclude_id=None)
    await tasks.welcome(session, user_id=user.id)
    return user


async def authenticate(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    login: str,
    password: str,
    attempts: SignInAttempts,
) -> User | None:
    """The user whose email or username is `login`, if `password` is theirs.

    An unknown login costs a full hash too, so that timing does not tell which part was wrong.
    The attempt is counted against the login before the password is checked, the same whether
    or not the login exists, and a login with too many refuses every password for a while.
    """
    await attempts.reserve(login)
    # Usernames are unique ignoring case and hold no `@`: at most one user matches.
    user = await session.scalar(
        select(User).where(
            or_(User.email == login.lower(), func.lower(User.username) == login.lower())
        )
    )
    password_matches = await hasher.verify(user.password_hash if user else None, password)
    if user is None or not password_matches:
        return None
    await attempts.succeeded(login)
    return user


async def update(
    session: AsyncSession,
    hasher: PasswordHasher,
    settings: AuthSettings,
    *,
    principal: Principal,
    changes: UpdateUser,
) -> User:
    """Apply the fields sent. The credentials (email, password) change only for a session
    signed in recently, never for an API key. A new password ends every other session of the
    user and revokes their API keys; a new email is announced to the old address."""
    fields = changes.model_fields_set
    username = changes.username if "username" in fields else None
    # Clients that send the whole user back with a new bio resend the email unchanged.
    email = changes.email if changes.email != principal.user.email else None
    if changes.password is not None or email is not None:
        if principal.session_id is None:
            raise Forbidden("api_key", "can't change email or password")
        await sessions.ensure_recent(session, settings, session_id=principal.session_id)
    user = await session.get_one(User, principal.user.id)
    await _ensure_unique(session, username=username, email=email, exclude_id=user.id)
    if username is not None:
        user.username = username
    if email is not None:
        await tasks.email_changed(session, user_id=user.id, old=user.email, new=email)
        user.email = email
    if changes.password is not None:
        user.password_hash = await hasher.hash(changes.password)
        await sessions.end_all(session, user_id=user.id, keep=principal.session_id)
    if "bio" in fields:
        user.bio = changes.bio
    if "image" in fields:
        user.image = changes.image
    await _flush_unique(session, user, exclude_id=user.id)
    if fields & {"username", "bio", "image"}:
        cached.changed(session, cached.PROFILES)
    return user
