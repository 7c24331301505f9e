"""Concurrent wrong passwords against a real server process: each attempt is counted before its
password is checked, so however many arrive at once, no more passwords are checked than the
quota allows, from one address or from many."""

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ConduitServer, database_env, serving

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PER_ADDRESS = 5
PER_ACCOUNT = 12
CROWD = 30
PASSWORD = "password123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConduitServer]:
    workdir = tmp_path_factory.mktemp("sign-in-guessing")
    with database_env(workdir) as env:
        limited = {
            **env,
            "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "1000",
            "CONDUIT_RATE_LIMIT_FAILED_SIGN_INS__QUOTA": str(PER_ADDRESS),
            "CONDUIT_RATE_LIMIT_FAILED_SIGN_INS_PER_ACCOUNT__QUOTA": str(PER_ACCOUNT),
            # The test's requests name their client; the readiness probes count apart.
            "CONDUIT_HTTP_TRUSTED_PROXIES": "127.0.0.1",
            # A crowd on a cold server can keep Redis's replies past the default 0.25 s, and a
            # call that times out is counted in the process instead (an outage's fallback, with
            # a quota of its own): what is under test here is the count in the store.
            "CONDUIT_REDIS_TIMEOUT_SECONDS": "5",
        }
        with serving(limited, workdir) as server:
            yield server


async def _register(client: httpx.AsyncClient, server: ConduitServer, username: str) -> None:
    user = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = await client.post(f"{server.api_url}/users", json={"user": user})
    assert response.status_code == 201, response.text


async def _guesses(server: ConduitServer, username: str, addresses: list[str]) -> list[int]:
    """The statuses of one wrong password per address in `addresses`, all sent at once."""
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        await _register(client, server, username)

        async def guess(address: str) -> int:
            response = await client.post(
                f"{server.base_url}/api/auth/token",
                data={"username": username, "password": "wrong-password"},
                headers={"X-Forwarded-For": address},
            )
            return response.status_code

        return list(await asyncio.gather(*(guess(address) for address in addresses)))


async def test_concurrent_guesses_from_one_address_check_at_most_its_quota(
    server: ConduitServer,
) -> None:
    statuses = await _guesses(server, "target", ["198.51.100.7"] * CROWD)

    assert set(statuses) <= {400, 429}, server.diagnostics()
    # Within one window exactly the quota is checked; across a boundary, no more.
    assert 1 <= statuses.count(400) <= PER_ADDRESS


async def test_concurrent_guesses_from_many_addresses_check_at_most_the_account_ceiling(
    server: ConduitServer,
) -> None:
    addresses = [f"198.51.100.{n + 1}" for n in range(CROWD)]

    statuses = await _guesses(server, "spread", addresses)

    assert set(statuses) <= {400, 429}, server.diagnostics()
    assert 1 <= statuses.count(400) <= PER_ACCOUNT
