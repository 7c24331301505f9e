"""What `conduit serve`'s protocol does to a connection's writes (`conduit.server`): those of one
turn of the event loop leave together, in order, and nothing written is lost or sent after the
connection closes. Through a real socket pair."""

import asyncio
import socket

import pytest

from conduit.server import CoalescingTransport

pytestmark = [pytest.mark.anyio, pytest.mark.one_pass]


class _Sent(asyncio.Protocol):
    """The far end: every chunk it receives, as received."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(exc)


async def _pair() -> tuple[CoalescingTransport, _Sent]:
    loop = asyncio.get_running_loop()
    near, far = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, near)
    received = _Sent()
    await loop.connect_accepted_socket(lambda: received, far)
    return CoalescingTransport(transport, loop), received


async def test_writes_of_one_turn_leave_together_and_in_order() -> None:
    transport, received = await _pair()

    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert transport.get_write_buffer_size() == 40
    await asyncio.sleep(0.05)
    transport.write(b"next")
    transport.close()
    await received.closed

    assert received.chunks == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]


async def test_an_abort_drops_what_was_not_sent() -> None:
    transport, received = await _pair()

    transport.write(b"never")
    transport.abort()
    await received.closed

    assert received.chunks == []
    assert transport.is_closing()
