"""A real SMTP server (aiosmtpd) in a thread of the test process, keeping what it receives.

`hold()` makes it keep the next message's DATA unanswered until the test calls `release()` or
the client goes away; a message whose client went away before the answer was not delivered, as
SMTP has it, and is not kept.
"""

import asyncio
import email
import email.policy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession

from tests.threaded import free_port


@dataclass
class Mailbox:
    host: str = "127.0.0.1"
    port: int = 0
    _messages: list[EmailMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _holding: bool = False
    _refused: frozenset[str] = frozenset()
    _held: threading.Event = field(default_factory=threading.Event)
    _dropped: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def hold(self) -> None:
        self._holding = True
        self._held.clear()
        self._dropped.clear()

    def release(self) -> None:
        self._holding = False

    def refuse(self, *recipients: str) -> None:
        """Refuse mail to these recipients from now on, as servers do an unknown mailbox (and
        only these: none when called with none)."""
        self._refused = frozenset(recipients)

    @property
    def released(self) -> bool:
        return not self._holding

    def wait_held(self, timeout: float = 10.0) -> None:
        """Until a message is being held."""
        if not self._held.wait(timeout):
            raise TimeoutError("no message reached the SMTP server")

    def wait_dropped(self, timeout: float = 10.0) -> None:
        """Until the client of the held message has gone away without an answer."""
        if not self._dropped.wait(timeout):
            raise TimeoutError("the held message's client is still connected")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            time.sleep(0.02)
        raise TimeoutError(f"{len(self.messages)} of {count} messages received")

    async def _until_released(self) -> None:
        while True:
            if self.released:
                return
            await asyncio.sleep(0.02)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's name)
        self, _: SMTP, __: SMTPSession, envelope: Envelope, address: str, ___: list[str]
    ) -> str:
        if address in self._refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's name)
        self, _: SMTP, __: SMTPSession, envelope: Envelope
    ) -> str:
        if self._holding:
            self._held.set()
            try:
                await self._until_released()
            except asyncio.CancelledError:
                # aiosmtpd cancels the handler when the client goes away.
                self._dropped.set()
                raise
        message = email.message_from_bytes(
            envelope.original_content or b"", _class=EmailMessage, policy=email.policy.default
        )
        with self._lock:
            self._messages.append(message)
        return "250 OK"


@contextmanager
def receiving() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
