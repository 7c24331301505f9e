from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth import sessions, tasks
from conduit.auth.models import User
from conduit.auth.passwords import PasswordHasher
from conduit.auth.principal import Principal
from conduit.auth.schemas import NewUser, UpdateUser
from conduit.cache import versions as cached
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
    Failures count against the account (an unknown login against itself, so that both fail
    alike), and an account with too many refuses every password for a while.
    """
    # Usernames are unique ignoring case and hold no `@`: at most one user matches.
    user = await session.scalar(
        select(User).where(
            or_(User.email == login.lower(), func.lower(User.username) == login.lower())
        )
    )
    account = f"user:{user.id}" if user is not None else f"login:{login.lower()}"
    await attempts.ensure_allowed(account)
    password_matches = await hasher.verify(user.password_hash if user else None, password)
    if user is None or not password_matches:
        await attempts.failed(account)
        return None
    return user


async def update(
    session: AsyncSession, hasher: PasswordHasher, *, principal: Principal, changes: UpdateUser
) -> User:
    """Apply the fields sent. A new password ends every other session of the user; an API key
    may not change the credentials (email, password) at all."""
    fields = changes.model_fields_set
    if principal.via_api_key and fields & {"email", "password"}:
        raise Forbidden("api_key", "can't change email or password")
    username = changes.username if "username" in fields else None
    email = changes.email if "email" in fields else None
    user = await session.get_one(User, principal.user.id)
    await _ensure_unique(session, username=username, email=email, exclude_id=user.id)
    if username is not None:
        user.username = username
    if email is not None:
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
