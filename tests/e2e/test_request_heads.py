"""What a real `conduit serve` process lets a request's head (its request line and headers)
cost: no more than `CONDUIT_HTTP_MAX_HEADER_BYTES`, counted as it arrives, and no longer than
`CONDUIT_HTTP_HEADER_TIMEOUT_SECONDS`; and what every response says of the server: nothing."""

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ConduitServer, database_env, serving

# What uvicorn's configuration does with a connection, whichever database is behind it.
pytestmark = [pytest.mark.e2e, pytest.mark.one_pass]

HEADER_TIMEOUT_SECONDS = 1
# Far beyond the bound: a connection still open by then was never closed.
DEADLINE_SECONDS = 30
REQUEST = b"GET /api/tags HTTP/1.1\r\nHost: conduit\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConduitServer]:
    workdir = tmp_path_factory.mktemp("request-heads")
    with database_env(workdir) as env:
        bounded = env | {"CONDUIT_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS)}
        with serving(bounded, workdir) as running:
            yield running


def _connect(server: ConduitServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)))
    connection.settimeout(DEADLINE_SECONDS)
    return connection


def _until_closed(connection: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a socket timeout if it never
    does, within the deadline)."""
    received = b""
    with connection:
        while chunk := connection.recv(65536):
            received += chunk
    return received


def _one_response(connection: socket.socket) -> bytes:
    """One response read off a kept-alive connection (by its `Content-Length`)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    length = int(_status_and_headers(received)[1][b"content-length"])
    while len(received.partition(b"\r\n\r\n")[2]) < length:
        received += connection.recv(65536)
    return received


def _status_and_headers(response: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    head, _, _ = response.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines)
    return status_line, headers


def test_responses_name_no_server_and_keep_their_date(server: ConduitServer) -> None:
    connection = _connect(server)
    connection.sendall(REQUEST + b"Connection: close\r\n\r\n")

    status_line, headers = _status_and_headers(_until_closed(connection))

    assert status_line == b"HTTP/1.1 200 OK"
    assert b"server" not in headers
    assert b"date" in headers


def test_a_head_that_does_not_arrive_in_time_is_answered_408_and_closed(
    server: ConduitServer,
) -> None:
    """Half a request, and a connection that sends nothing at all: both are closed (the first
    with a 408) instead of held open for as long as the client likes."""
    half = _connect(server)
    half.sendall(REQUEST + b"X-Never-Finished: ")
    silent = _connect(server)

    answer = _until_closed(half)

    assert _status_and_headers(answer)[0] == b"HTTP/1.1 408 Request Timeout"
    assert answer.endswith(b'{"errors":{"request":["headers not received in time"]}}')
    assert _until_closed(silent) == b""


def test_an_idle_keep_alive_connection_outlives_the_head_timeout(server: ConduitServer) -> None:
    """Between requests the keep-alive timer (5 s) bounds the wait, not the head's."""
    connection = _connect(server)
    connection.sendall(REQUEST + b"\r\n")
    first = _one_response(connection)
    time.sleep(HEADER_TIMEOUT_SECONDS * 2)
    connection.sendall(REQUEST + b"Connection: close\r\n\r\n")

    assert _status_and_headers(first)[0] == b"HTTP/1.1 200 OK"
    assert _status_and_headers(_until_closed(connection))[0] == b"HTTP/1.1 200 OK"


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "never finished"])
def test_a_head_beyond_the_bound_is_answered_431_and_closed(
    server: ConduitServer, *, finished: bool
) -> None:
    """1 MiB of header: refused once 16 KiB have arrived, whether or not it would ever end,
    rather than read and buffered to the end."""
    connection = _connect(server)
    header = b"X-Padding: " + b"a" * 1024 * 1024 + b"\r\n"
    connection.sendall(REQUEST + header + (b"\r\n" if finished else b""))

    answer = _until_closed(connection)

    assert _status_and_headers(answer)[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert answer.endswith(b'{"errors":{"request":["header fields too large"]}}')


def test_a_head_within_the_bound_is_served(server: ConduitServer) -> None:
    connection = _connect(server)
    header = b"X-Padding: " + b"a" * 10 * 1024 + b"\r\n"
    connection.sendall(REQUEST + header + b"Connection: close\r\n\r\n")

    assert _status_and_headers(_until_closed(connection))[0] == b"HTTP/1.1 200 OK"
