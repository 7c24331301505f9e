"""Email: sent over SMTP by jobs, or, with no SMTP server configured, written to the log.

Each email is sent by one job and recorded under that job's id once sent (`SentEmail`), so a
job that runs again does not send it again. A job that dies between the server's acceptance and
that record's commit sends it twice; both copies carry the same `Message-ID`, derived from the
job's id, by which mail software recognises the second.

No production log line holds an address: a recipient is logged as the SHA-256 of its lower-cased
address (`recipient_digest`), the digest rate limits count sign-ins and resets by, which an
operator finds again from an address a user gives (`printf %s ADDRESS | sha256sum`). Only a
developer's console shows the address and the body.
"""

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from conduit.auth.tokens import digest
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


# What an SMTP server's reply may name a recipient by.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:'\"@]+@[^\s<>()\[\],;:'\"@]+")


def recipient_digest(address: str) -> str:
    """How a log line names an email's recipient."""
    return digest(address.lower())


class NotSent(Exception):
    """The SMTP server refused an email, or could not be reached; its reply without addresses."""


class Mailer:
    """The process's way out for email: the SMTP server the settings name, or the log."""

    def __init__(self, settings: SmtpSettings, *, log_contents: bool) -> None:
        self._settings = settings
        # Addresses, and bodies, which carry tokens (password reset): logged on a developer's
        # machine, never in production.
        self._log_contents = log_contents

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
            self._log(email, message_id=message_id)
            return
        message = EmailMessage()
        message["From"] = formataddr(parseaddr(settings.sender))
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Message-ID"] = message_id
        message.set_content(email.body)
        import aiosmtplib  # noqa: PLC0415 (~50 ms of start-up, and only jobs send)

        try:
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
        except aiosmtplib.SMTPException as error:
            # Replies name the recipient (`550 5.1.1 <ADDRESS>: Recipient address rejected`),
            # and so does aiosmtplib's error; the job's failure line would log them.
            reply = _ADDRESS.sub(lambda found: f"sha256:{recipient_digest(found[0])}", str(error))
            raise NotSent(f"{type(error).__name__}: {reply}") from None

    def _log(self, email: Email, *, message_id: str) -> None:
        fields: dict[str, str]
        if self._log_contents:
            recipient, body = email.to, f"\n{email.body}"
            fields = {"to": email.to, "body": email.body}
        else:
            hashed = recipient_digest(email.to)
            recipient, body = f"sha256:{hashed}", ""
            fields = {"recipient_digest": hashed}
        logger.info(
            "email_logged: no SMTP server, to %s: %s%s",
            recipient,
            email.subject,
            body,
            extra={**fields, "subject": email.subject, "message_id": message_id},
        )
