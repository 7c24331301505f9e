"""The authentication domain's jobs: the welcome email, the notice of a changed email address,
and the periodic purge of what no longer authenticates anyone."""

from datetime import timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth.models import AuthSession, PasswordResetToken, RefreshToken, User
from conduit.database import utcnow
from conduit.jobs import Arguments, Job, JobContext, enqueue, task
from conduit.mail import Email


class Registered(Arguments):
    user_id: int


async def welcome(session: AsyncSession, *, user_id: int) -> None:
    await enqueue(session, send_welcome, Registered(user_id=user_id))


@task("auth.welcome_email", Registered)
async def send_welcome(context: JobContext, job: Job, registered: Registered) -> None:
    async with context.database.sessions() as session:
        user = await session.get(User, registered.user_id)
    if user is None:
        return
    email = Email(
        to=user.email,
        subject="Welcome to Conduit",
        body=(
            f"Hello {user.username},\n\n"
            "Your Conduit account is ready: follow authors, favorite articles, and write "
            "your own.\n"
        ),
    )
    await context.mailer.send_once(context.database.sessions, job_id=job.id, email=email)


class EmailChanged(Arguments):
    user_id: int
    old: str
    new: str


async def email_changed(session: AsyncSession, *, user_id: int, old: str, new: str) -> None:
    await enqueue(session, send_email_changed, EmailChanged(user_id=user_id, old=old, new=new))


def _masked(address: str) -> str:
    """`j***@example.com`: enough for the owner to recognise an address, not to learn one."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


@task("auth.email_changed", EmailChanged)
async def send_email_changed(context: JobContext, job: Job, changed: EmailChanged) -> None:
    """Tell the old address: if a stolen session made the change, the owner learns it there,
    the one place the thief does not read."""
    async with context.database.sessions() as session:
        username = await session.scalar(select(User.username).where(User.id == changed.user_id))
    if username is None:
        return
    email = Email(
        to=changed.old,
        subject="The email address of your Conduit account changed",
        body=(
            f"Hello {username},\n\n"
            f"The email address of your Conduit account is now {_masked(changed.new)}; "
            "this address will no longer receive its emails.\n\n"
            "If it was not you, someone else is signed in to your account. Sign in with your "
            "username and password, change the address back, and change your password: that "
            "ends every other session and revokes every API key.\n"
        ),
    )
    await context.mailer.send_once(context.database.sessions, job_id=job.id, email=email)


@task("auth.purge", Arguments)
async def purge(context: JobContext, _: Job, __: Arguments) -> None:
    """Delete ended sessions (and their refresh tokens), refresh tokens past their expiry, and
    password-reset tokens used or expired. A session ends when it is revoked, or once its
    RealWorld token has expired and it has no refresh token left to renew it."""
    now = utcnow()
    token_ttl = timedelta(seconds=context.settings.auth.token_ttl_seconds)
    renewable = exists().where(
        RefreshToken.session_id == AuthSession.id,
        RefreshToken.used_at.is_(None),
        RefreshToken.expires_at > now,
    )
    async with context.unit_of_work() as session:
        await session.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now))
        await session.execute(
            delete(AuthSession).where(
                or_(
                    AuthSession.revoked_at.is_not(None),
                    (AuthSession.created_at <= now - token_ttl) & ~renewable,
                )
            )
        )
        await session.execute(
            delete(PasswordResetToken).where(
                or_(PasswordResetToken.used_at.is_not(None), PasswordResetToken.expires_at <= now)
            )
        )
