"""uvicorn, stopped without dropping a request it has accepted (docs/operations.md, "Shutdown").

On SIGTERM uvicorn closes its listening sockets, then closes every connection with no request
under way. A client whose request was already on its way sees a reset and cannot tell whether
it was carried out (tests/e2e/test_shutdown.py caught each case): a connection the kernel had
completed but the server not yet accepted, a new connection whose request bytes had arrived but
were not yet read, an idle keep-alive connection whose next request had arrived, and, under
`--workers N`, every connection the kernel completed on the supervisor's copy of the listening
socket after the workers stopped accepting. Here:

- `DrainingHttpToolsProtocol` leaves such connections open: the request on its way is answered
  with `Connection: close`, and a connection that sends nothing is closed by the keep-alive
  timer (5 s), within the grace period;
- `Server` accepts what the kernel has queued before it closes its listening sockets;
- `Multiprocess` closes the supervisor's copy of the listening socket before it stops the
  workers.

`DrainingHttpToolsProtocol` also bounds what a request's head (its request line and headers)
may cost, which uvicorn's httptools protocol does not (docs/operations.md, "Request heads"):
it must arrive within `CONDUIT_HTTP_HEADER_TIMEOUT_SECONDS` of the connection opening or of its
first bytes, and stay within `CONDUIT_HTTP_MAX_HEADER_BYTES`, counted as it arrives. And it
sends what a connection's responses write in one turn of the event loop together
(`CoalescingTransport`).
"""

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from starlette.responses import Response
from starlette.status import (
    HTTP_408_REQUEST_TIMEOUT,
    HTTP_431_REQUEST_HEADER_FIELDS_TOO_LARGE,
)
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState
from uvicorn.supervisors.multiprocess import Multiprocess as UvicornMultiprocess

from conduit.errors import error_response

_CLOSE = {"Connection": "close"}
_HEAD_TOO_LARGE = error_response(
    HTTP_431_REQUEST_HEADER_FIELDS_TOO_LARGE, {"request": ["header fields too large"]}, _CLOSE
)
_HEAD_TOO_SLOW = error_response(
    HTTP_408_REQUEST_TIMEOUT, {"request": ["headers not received in time"]}, _CLOSE
)
# After a refusal, how long the rest of what the client sends is read and dropped: closing with
# unread data would reset the connection, and the client might never read why.
_LINGER_SECONDS = 2.0


class Config(uvicorn.Config):
    """uvicorn's configuration, served by `DrainingHttpToolsProtocol` with the bounds it puts
    on a request's head, and without a `Server` header."""

    def __init__(
        self, app: str, *, header_timeout_seconds: float, max_header_bytes: int, **options: Any
    ) -> None:
        super().__init__(app, http=DrainingHttpToolsProtocol, server_header=False, **options)
        self.header_timeout_seconds = header_timeout_seconds
        self.max_header_bytes = max_header_bytes


class CoalescingTransport(asyncio.Transport):
    """A connection's transport whose writes of one turn of the event loop leave in one system
    call: uvicorn writes a response's head as soon as the app starts it and its body when the
    app sends it, two sends where one does. On this machine the second send was a tenth of a
    cached read's CPU (docs/benchmarks.md, issue 22)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))


class _Draining:
    """Whether this process is shutting down: connections made from then on drain at once."""

    on = False


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = config.header_timeout_seconds
        self.max_header_bytes = config.max_header_bytes
        # Between a request's first byte (or the connection opening) and its headers' end.
        self.awaiting_head = True
        # Of the head awaited, those received in reads that held nothing else (a head begun
        # after another request in the same read is counted from the next read on).
        self.head_bytes = 0
        # When the head awaited must be complete by, or the refused connection closed.
        self.deadline: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
        self.deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)
        if _Draining.on:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.deadline is not None:
            self.deadline.cancel()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.awaiting_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if not self.awaiting_head or self.transport.is_closing():
            return
        if self.head_bytes > self.max_header_bytes:
            self._refuse(_HEAD_TOO_LARGE)
        elif self.deadline is None and (self.head_bytes or self._idle()):
            self.deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self.awaiting_head = False
        self.head_bytes = 0
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        parsed = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if parsed > self.max_header_bytes:
            # Answered as any request is (after those before it), by an app of one response.
            app, self.app = self.app, _HEAD_TOO_LARGE
            super().on_headers_complete()
            self.app = app
        else:
            super().on_headers_complete()
        if _Draining.on:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.awaiting_head = True

    def _idle(self) -> bool:
        """No request under way: between the connection opening, or the last response, and the
        next request's headers (uvicorn's keep-alive timer, which any byte stops, ran until
        now)."""
        cycle: RequestResponseCycle | None = self.cycle
        return cycle is None or cycle.response_complete

    def _head_too_slow(self) -> None:
        self.deadline = None
        if self.head_bytes:
            self._refuse(_HEAD_TOO_SLOW)
        else:
            self.transport.close()

    def _refuse(self, response: Response) -> None:
        """Answer `response` and close the connection, reading and dropping whatever the client
        still sends for a moment first; when an earlier request's answer is under way, close it
        at once."""
        if not self._idle():
            self.transport.close()
            return
        self.refused = True
        self.transport.write(_raw(response, self.server_state.default_headers))
        self.transport.write_eof()
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def shutdown(self) -> None:
        """The request under way, or the next one, is the connection's last."""
        _Draining.on = True
        # None until the first request's headers (uvicorn types it as always set).
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False
        elif cycle is None and self.timeout_keep_alive_task is None:
            # Opened to send a request that has not arrived: wait for it as for a keep-alive one.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


def _raw(response: Response, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """`response` as bytes on the wire, for a connection no ASGI cycle answers."""
    headers = dict([*default_headers, *response.raw_headers])
    lines = [name + b": " + value + b"\r\n" for name, value in headers.items()]
    return b"".join([STATUS_LINE[response.status_code], *lines, b"\r\n", response.body])


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _Draining.on = True
        loop = asyncio.get_running_loop()
        for listener in self.servers:
            queued = [_accept_queued(sock) for sock in listener.sockets]
            listener.close()
            for connection in (c for connections in queued for c in connections):
                await loop.connect_accepted_socket(self._protocol, connection)
        await super().shutdown(sockets)

    def _protocol(self) -> asyncio.Protocol:
        config = self.config
        # The configured protocol (`DrainingHttpToolsProtocol`), created as uvicorn creates it.
        protocol_class: Any = config.http_protocol_class
        protocol: asyncio.Protocol = protocol_class(
            config=config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol


def _accept_queued(listener: Any) -> list[socket.socket]:
    """The connections the kernel has completed on `listener` and nobody accepted yet."""
    accepted = []
    own = socket.socket(fileno=listener.fileno())
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while True:
            connection, _ = own.accept()
            connection.setblocking(False)
            accepted.append(connection)
    # The listener stays asyncio's to close.
    own.detach()
    return accepted


class Multiprocess(UvicornMultiprocess):
    def terminate_all(self) -> None:
        # While the supervisor holds the listening socket, the kernel completes connections
        # that no worker will accept, and resets them all when the supervisor exits.
        for sock in self.sockets:
            sock.close()
        super().terminate_all()
