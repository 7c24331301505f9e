"""A frontend that calls the API from its own server (docs/deployment.md, "Frontends that call
the API from a server"), against a real `conduit serve`: with the frontend's address in
CONDUIT_HTTP_TRUSTED_PROXIES, each visitor it names in X-Forwarded-For has a sign-in quota of
its own, and a visitor cannot take another's by writing the header itself; from any other
peer, loopback included, the header is ignored."""

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ConduitServer, database_env, serving

pytestmark = pytest.mark.e2e

# The frontend's server: a second loopback address, so that the untrusted peer can be
# 127.0.0.1, which uvicorn would trust by default (FORWARDED_ALLOW_IPS) were it left to.
FRONTEND = "127.0.0.2"
ELSEWHERE = "127.0.0.1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ConduitServer]:
    with socket.socket() as probe:
        try:
            probe.bind((FRONTEND, 0))
        except OSError:
            pytest.skip(f"{FRONTEND} is not a local address here (macOS: ifconfig lo0 alias)")
    with database_env(tmp_path) as env:
        limits = {
            "CONDUIT_HTTP_TRUSTED_PROXIES": FRONTEND,
            "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "1",
            "CONDUIT_RATE_LIMIT_SIGN_IN__WINDOW_SECONDS": "3600",
        }
        with serving(env | limits, tmp_path) as server:
            yield server


def _from(address: str, server: ConduitServer) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.api_url, transport=transport, timeout=10, trust_env=False)


def _sign_in(client: httpx.Client, forwarded_for: str, login: str) -> int:
    """A sign-in with a wrong password: 401 while the address has sign-ins left, then 429."""
    response = client.post(
        "/users/login",
        headers={"X-Forwarded-For": forwarded_for},
        json={"user": {"email": f"{login}@example.com", "password": "not-the-password"}},
    )
    return response.status_code


def test_visitors_named_by_a_trusted_frontend_have_a_quota_each(server: ConduitServer) -> None:
    with _from(FRONTEND, server) as frontend:
        first = _sign_in(frontend, "198.51.100.1", "ann")
        again = _sign_in(frontend, "198.51.100.1", "bob")
        other_visitor = _sign_in(frontend, "198.51.100.2", "cat")
        # Visitor 1 writes a header naming someone else; the frontend appends what it saw.
        forged = _sign_in(frontend, "203.0.113.9, 198.51.100.1", "dan")

    assert [first, again, other_visitor, forged] == [401, 429, 401, 429], server.diagnostics()


def test_the_header_from_an_untrusted_peer_is_ignored(server: ConduitServer) -> None:
    with _from(ELSEWHERE, server) as peer:
        statuses = [
            _sign_in(peer, "203.0.113.1", "eve"),
            _sign_in(peer, "203.0.113.2", "fay"),
        ]

    assert statuses == [401, 429], server.diagnostics()
