"""One connection to Redis for every request of a process, multiplexed.

A request's commands are written to the connection as soon as they are made, whatever else is
in flight, and Redis answers them in the order they were sent: each reply goes to the oldest
caller still waiting, so concurrent requests share one socket without waiting for each other
(the design of StackExchange.Redis's multiplexer). The protocol is hiredis's, Redis's own C
parser and packer; there is no pool to take a connection from and give it back, no pipeline
object per call and no lock, which is where redis-py's asyncio client spends most of a cached
read's CPU (docs/benchmarks.md, issue 22).

A call that does not get its replies in time closes the connection, failing the calls that
share it: a reply that never comes cannot be told from one that is late, and the next call
connects again. One timer watches the oldest call, the first to be late if any is, rather than
a timer per call (with `asyncio.timeout` per call a cached read cost 9% more CPU). Redis's
error replies are raised as `ReplyError`.
"""

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import hiredis

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

# What `REDIS_URL`'s query may say (redis-py's names for them, which operators know).
_OPTIONS = {"db", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname"}
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

Command = tuple[str | bytes | int, ...]
ReplyError = hiredis.ReplyError


class ConnectionLost(ConnectionError):
    """The connection closed, or its replies could not be read, before a call's replies came."""


class AuthenticationFailed(ConnectionError):
    """Redis refused the user and password of `REDIS_URL`."""


@dataclass(slots=True)
class _Call:
    """Commands sent, waiting for their replies."""

    done: asyncio.Future[list[Any]]
    expected: int
    deadline: float
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    transport: asyncio.Transport

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds
        # Set while a call waits: when the oldest of them is due.
        self.watch: asyncio.TimerHandle | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[_Call] = deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.waiting:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as error:
                self.close(error)
                return
            if reply is False:
                return
            call = self.waiting[0]
            call.replies.append(reply)
            if len(call.replies) == call.expected:
                self.waiting.popleft()
                # Done already when its caller stopped waiting (it timed out, or its client
                # went away).
                if not call.done.done():
                    call.done.set_result(call.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionLost("closed by the server")
        if self.watch is not None:
            self.watch.cancel()
        while self.waiting:
            call = self.waiting.popleft()
            if not call.done.done():
                call.done.set_exception(ConnectionLost(str(self.lost)))

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """The commands' replies, or a TimeoutError if they do not come within the timeout."""
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future(), len(commands), loop.time() + self.timeout)
        self.waiting.append(call)
        if self.watch is None:
            self.watch = loop.call_at(call.deadline, self._overdue)
        self.transport.write(
            # hiredis's stub types a command as a tuple of one part.
            b"".join(hiredis.pack_command(command) for command in commands)  # type: ignore[arg-type]
        )
        return call.done

    def _overdue(self) -> None:
        """At the deadline of what was the oldest call: the calls are answered in the order
        they were sent, and due in that order, so the oldest still waiting is late or is the
        next to watch."""
        self.watch = None
        if not self.waiting:
            return
        oldest = self.waiting[0]
        loop = asyncio.get_running_loop()
        if loop.time() < oldest.deadline:
            self.watch = loop.call_at(oldest.deadline, self._overdue)
            return
        late = TimeoutError("no reply in time")
        self.waiting.popleft()
        if not oldest.done.done():
            oldest.done.set_exception(late)
        self.close(late)

    def close(self, reason: BaseException) -> None:
        self.lost = reason
        self.transport.abort()


@dataclass(frozen=True, slots=True)
class Address:
    """Where `REDIS_URL` points and as whom: a host and port, or a unix socket's path."""

    host: str
    port: int
    socket: str | None
    db: int
    username: str | None
    password: str | None
    # `rediss://`: TLS, checked as the query says (`ssl_cert_reqs`, `ssl_ca_certs`,
    # `ssl_check_hostname`); None otherwise.
    tls: dict[str, str] | None


def address(url: str) -> Address:
    """What `url` says, as `redis://[[user]:password@]host[:port][/db]`, `rediss://` (the same
    over TLS) or `unix://[[user]:password@]/path`; a ValueError says what it cannot take, a
    query option above all (redis-py's socket and pool tuning is not a multiplexed
    connection's)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - _OPTIONS)
    if unknown:
        raise ValueError(f"REDIS_URL: options not supported: {', '.join(unknown)}")
    if query.get("ssl_cert_reqs", "required").lower() not in _CERT_REQS:
        raise ValueError("REDIS_URL: ssl_cert_reqs is none, optional or required")
    unix = parts.scheme == "unix"
    db = query.get("db") or ("" if unix else parts.path.lstrip("/")) or "0"
    if not db.isdigit():
        raise ValueError("REDIS_URL: the database is a number (`/1`)")
    return Address(
        host=parts.hostname or "localhost",
        port=parts.port or 6379,
        socket=parts.path if unix else None,
        db=int(db),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=query if parts.scheme == "rediss" else None,
    )


class RedisConnection:
    def __init__(self, url: str, *, timeout_seconds: float, tracer: "Tracer | None" = None) -> None:
        self._address = address(url)
        self._timeout = timeout_seconds
        # With tracing on (`conduit.tracing`), a span for each call, named by its commands.
        self._tracer = tracer
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """The commands' replies, raising the first error reply as `ReplyError`: connecting
        first if need be, and each step bounded by the timeout (TimeoutError)."""
        if self._tracer is None:
            return await self._run(commands)
        from opentelemetry.trace import SpanKind  # noqa: PLC0415 (only with tracing on)

        names = " ".join(_text(command[0]) for command in commands)
        where = self._address
        attributes: dict[str, str | int] = {
            "db.system": "redis",
            "db.operation": names,
            "db.redis.database_index": where.db,
            "server.address": where.socket or where.host,
        }
        with self._tracer.start_as_current_span(names, kind=SpanKind.CLIENT, attributes=attributes):
            return await self._run(commands)

    async def _run(self, commands: Sequence[Command]) -> list[Any]:
        protocol = await self._connected()
        replies = await protocol.send(commands)
        _raise_first_error(replies)
        return replies

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.ensure_future(self._connect())
            connecting.add_done_callback(self._connected_or_failed)
        # Shielded: a caller that gives up leaves the connection to the others.
        return await asyncio.shield(connecting)

    def _connected_or_failed(self, connecting: "asyncio.Task[_Protocol]") -> None:
        self._connecting = None
        if not connecting.cancelled() and connecting.exception() is None:
            self._protocol = connecting.result()

    async def _connect(self) -> _Protocol:
        async with asyncio.timeout(self._timeout):
            return await self._open()

    async def _open(self) -> _Protocol:
        where = self._address
        loop = asyncio.get_running_loop()
        connected = partial(_Protocol, self._timeout)
        transport: asyncio.BaseTransport
        if where.socket is not None:
            transport, protocol = await loop.create_unix_connection(connected, where.socket)
        else:
            tls = None if where.tls is None else _tls(where.tls)
            transport, protocol = await loop.create_connection(
                connected, where.host, where.port, ssl=tls
            )
        handshake: list[Command] = []
        if where.password is not None:
            handshake.append(("AUTH", *filter(None, (where.username, where.password))))
        if where.db:
            handshake.append(("SELECT", where.db))
        if handshake:
            try:
                replies = await protocol.send(handshake)
            except BaseException:
                transport.abort()
                raise
            failed = next((reply for reply in replies if isinstance(reply, ReplyError)), None)
            if failed is not None:
                transport.abort()
                if where.password is not None and replies[0] is failed:
                    raise AuthenticationFailed(str(failed))
                raise failed
        return protocol

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is not None:
            self._protocol.close(ConnectionLost("closed by Conduit"))


def _text(part: str | bytes | int) -> str:
    return part.decode() if isinstance(part, bytes) else str(part)


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, ReplyError):
            raise reply


def _tls(options: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    requirement = options.get("ssl_cert_reqs", "required").lower()
    check_hostname = options.get("ssl_check_hostname", str(requirement != "none"))
    context.check_hostname = check_hostname.lower() not in {"false", "0", "no"}
    context.verify_mode = _CERT_REQS[requirement]
    return context
