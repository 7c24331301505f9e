"""The authentication domain's jobs: the welcome email, and the periodic purge of what no
longer authenticates anyone."""

from datetime import timedelta

from sqlalchemy import delete, exists, or_
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
