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
"""

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors.multiprocess import Multiprocess as UvicornMultiprocess


class _Draining:
    """Whether this process is shutting down: connections made from then on drain at once."""

    on = False


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if _Draining.on:
            self.shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if _Draining.on:
            self.cycle.keep_alive = False

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
