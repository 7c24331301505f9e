"""Email: sent over SMTP by jobs, or, with no SMTP server configured, written to the log.

Each email is sent by one job and recorded under that job's id once sent (`SentEmail`), so a
job that runs again does not send it again. A job that dies between the server's acceptance and
that record's commit sends it twice; both copies carry the same `Message-ID`, derived from the
job's id, by which mail software recognises the second.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from conduit.config import SmtpSettings
from conduit.database import Base, UTCDateTime, insert, transaction, utcnow

logger = logging.getLogger(__name__)


class SentEmail(Base):
    """An email a job sent, by the job's id."""

    __tablename__ = "sent_emails"

    job_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    body: str


class Mailer:
    """The process's way out for email: the SMTP server the settings name, or the log."""

    def __init__(self, settings: SmtpSettings, *, log_bodies: bool) -> None:
        self._settings = settings
        # Bodies carry tokens (password reset): logged on a developer's machine, never in
        # production.
        self._log_bodies = log_bodies

    async def send_once(
        self, sessions: async_sessionmaker[AsyncSession], *, job_id: uuid.UUID, email: Email
    ) -> None:
        """Send `email` for the job `job_id` unless that job already has, and record it. No
        transaction is open while the SMTP server is talked to: on SQLite, one would hold the
        database's only write lock for as long."""
        async with sessions() as session:
            if await session.get(SentEmail, job_id) is not None:
                return
        await self._send(email, message_id=f"<{job_id}@conduit>")
        async with transaction(sessions) as session:
            await session.execute(
                insert(session, SentEmail)
                .values(job_id=job_id, recipient=email.to, subject=email.subject, sent_at=utcnow())
                .on_conflict_do_nothing(index_elements=[SentEmail.job_id])
            )

    async def _send(self, email: Email, *, message_id: str) -> None:
        settings = self._settings
        if settings.host is None:
            extra = {"to": email.to, "subject": email.subject, "message_id": message_id}
            if self._log_bodies:
                extra["body"] = email.body
            body = f"\n{email.body}" if self._log_bodies else ""
            logger.info(
                "email_logged: no SMTP server, to %s: %s%s",
                email.to,
                email.subject,
                body,
                extra=extra,
            )
            return
        message = EmailMessage()
        message["From"] = formataddr(parseaddr(settings.sender))
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = message_id
        message.set_content(email.body)
        import aiosmtplib  # noqa: PLC0415 (~50 ms of start-up, and only jobs send)

        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password.get_secret_value() if settings.password else None,
            start_tls=settings.starttls,
            use_tls=settings.implicit_tls,
            timeout=settings.timeout_seconds,
        )
