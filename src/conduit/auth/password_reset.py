"""Password reset: a request enqueues a job, which emails a single-use token to the account's
address (if there is an account); the token, within 30 minutes, sets a new password and ends
every session of the account.

The request does the same work whether or not the address has an account (one job, no lookup),
so neither its answer nor its timing tells. The token is derived from the job's id with the
signing key (HMAC-SHA256), so a job that runs twice sends the same token, and nothing that can
be turned back into a token is stored: the token table keeps its SHA-256.
"""

import base64
import hashlib
import hmac
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conduit.auth import sessions
from conduit.auth.models import PasswordResetToken, User
from conduit.auth.passwords import PasswordHasher
from conduit.auth.tokens import digest
from conduit.config import Settings
from conduit.database import insert, utcnow
from conduit.errors import Unprocessable
from conduit.jobs import Arguments, Job, JobContext, enqueue, task
from conduit.mail import Email

TOKEN_TTL = timedelta(minutes=30)


class ResetRequested(Arguments):
    email: str


async def request(session: AsyncSession, *, email: str) -> None:
    await enqueue(session, send_token, ResetRequested(email=email))


def _token(settings: Settings, job_id: uuid.UUID) -> str:
    key = settings.auth.secret_key.get_secret_value().encode()
    mac = hmac.new(key, b"password-reset:" + job_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _instructions(settings: Settings, token: str) -> str:
    template = settings.smtp.password_reset_url
    if template is not None:
        where = f"open this link:\n\n{template.replace('{token}', token)}"
    else:
        where = (
            "send this token, with your new password, to POST /api/users/password-reset/confirm:"
            f"\n\n{token}"
        )
    return (
        "Someone, hopefully you, asked to reset the password of your Conduit account.\n\n"
        f"To choose a new password within 30 minutes, {where}\n\n"
        "If it was not you, ignore this email: your password stays as it is.\n"
    )


@task("auth.password_reset", ResetRequested)
async def send_token(context: JobContext, job: Job, requested: ResetRequested) -> None:
    async with context.unit_of_work() as session:
        user_id = await session.scalar(select(User.id).where(User.email == requested.email))
        if user_id is None:
            return
        token = _token(context.settings, job.id)
        await session.execute(
            insert(session, PasswordResetToken)
            .values(
                user_id=user_id,
                token_hash=digest(token),
                job_id=job.id,
                created_at=utcnow(),
                expires_at=utcnow() + TOKEN_TTL,
            )
            .on_conflict_do_nothing(index_elements=[PasswordResetToken.job_id])
        )
    email = Email(
        to=requested.email,
        subject="Reset your Conduit password",
        body=_instructions(context.settings, token),
    )
    await context.mailer.send_once(context.database.sessions, job_id=job.id, email=email)


async def confirm(
    session: AsyncSession, hasher: PasswordHasher, *, token: str, password: str
) -> None:
    """Set the password of the token's account and end all its sessions. The claim is one
    atomic UPDATE, so of two concurrent uses exactly one succeeds."""
    now = utcnow()
    user_id = await session.scalar(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.token_hash == digest(token),
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(PasswordResetToken.user_id)
    )
    if user_id is None:
        raise Unprocessable("token", "is invalid or has expired")
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=await hasher.hash(password), updated_at=now)
    )
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    await sessions.end_all(session, user_id=user_id)
