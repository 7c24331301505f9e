"""What an attacker who makes the server hash passwords costs a bystander signing in.

One `conduit serve` at the default rate limits (SQLite; counts in memory, or with `--workers 2`
in the Redis `--redis` names, so that the workers share them). A bystander
signs in one request at a time; meanwhile, in the attack phases, an attacker changes the
passwords of accounts of its own as fast as the server answers, each change an argon2 hash,
until every account is refused (429) or the bystander is done: from one address, where the
`sign-in` quota per address bounds it, and from as many addresses as accounts, where only the
quota per account does. The bystander's sign-in latency is reported for each phase, in the
same run.

    .tools/bin/uv run python -m benchmarks.hashing
    .tools/bin/uv run python -m benchmarks.hashing --workers 2 --redis redis://127.0.0.1:6379/0

See docs/benchmarks.md ("Hashing").
"""

import asyncio
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

from benchmarks.setup import database, processes, servers

PASSWORD = "password123"  # noqa: S105 (the accounts the run registers)
# Each phase's attack ends by itself once its accounts are refused; this bounds it regardless.
ATTACK_LIMIT_SECONDS = 120.0

app = typer.Typer(add_completion=False)


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    latencies_ms: list[float]
    statuses: dict[int, int]
    hashes: int
    seconds: float


def _address(block: int, number: int) -> str:
    """A client address the server is told of (X-Forwarded-For), never one sent to."""
    return f"198.18.{block}.{number + 1}"


async def _register(client: httpx.AsyncClient, base_url: str, username: str, address: str) -> str:
    user = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = await client.post(
        f"{base_url}/api/users", json={"user": user}, headers={"X-Forwarded-For": address}
    )
    response.raise_for_status()
    token: str = response.json()["user"]["token"]
    return token


async def _bystander(
    client: httpx.AsyncClient, base_url: str, username: str, block: int, sign_ins: int
) -> tuple[list[float], dict[int, int]]:
    """Sign-ins one after another, each from an address of its own (the bystander is many
    users behind many addresses, none near its own quota)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    body = {"user": {"email": f"{username}@example.com", "password": PASSWORD}}
    for number in range(sign_ins):
        started = time.perf_counter()
        response = await client.post(
            f"{base_url}/api/users/login",
            json=body,
            headers={"X-Forwarded-For": _address(block, number)},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return latencies, statuses


async def _attacker(
    client: httpx.AsyncClient,
    base_url: str,
    tokens: list[str],
    addresses: list[str],
    stop: asyncio.Event,
) -> int:
    """Each account changes its password in a loop until refused or told to stop: how many
    changes were made (hashes computed)."""
    made = 0

    async def account(number: int, token: str) -> None:
        nonlocal made
        while not stop.is_set():
            response = await client.put(
                f"{base_url}/api/user",
                json={"user": {"password": f"attack-{secrets.token_hex(4)}"}},
                headers={
                    "Authorization": f"Token {token}",
                    "X-Forwarded-For": addresses[number % len(addresses)],
                },
            )
            if response.status_code != httpx.codes.OK:
                return
            made += 1

    await asyncio.gather(*(account(number, token) for number, token in enumerate(tokens)))
    return made


async def _phases(base_url: str, accounts: int, sign_ins: int) -> list[Phase]:
    limits = httpx.Limits(max_connections=accounts + 2)
    async with httpx.AsyncClient(timeout=60, trust_env=False, limits=limits) as client:
        bystanders = ["bystander0", "bystander1", "bystander2"]
        for number, name in enumerate(bystanders):
            await _register(client, base_url, name, _address(250, number))
        one_address = [
            await _register(client, base_url, f"single{n}", _address(251, n))
            for n in range(accounts)
        ]
        many_addresses = [
            await _register(client, base_url, f"spread{n}", _address(252, n))
            for n in range(accounts)
        ]
        attacks: list[tuple[str, list[str], list[str]]] = [
            ("no attacker", [], []),
            (f"{accounts} accounts, 1 address", one_address, [_address(253, 0)]),
            (
                f"{accounts} accounts, {accounts} addresses",
                many_addresses,
                [_address(254, n) for n in range(accounts)],
            ),
        ]
        phases = []
        for block, (name, tokens, addresses) in enumerate(attacks):
            stop = asyncio.Event()
            started = time.perf_counter()
            attack = asyncio.create_task(_attacker(client, base_url, tokens, addresses, stop))
            # Let the attack reach the hasher before the bystander arrives.
            await asyncio.sleep(0.5 if tokens else 0)
            latencies, statuses = await asyncio.wait_for(
                _bystander(client, base_url, bystanders[block], block, sign_ins),
                ATTACK_LIMIT_SECONDS,
            )
            stop.set()
            hashes = await asyncio.wait_for(attack, ATTACK_LIMIT_SECONDS)
            elapsed = time.perf_counter() - started
            phases.append(Phase(name, latencies, statuses, hashes, elapsed))
        return phases


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@app.command()
def main(
    *,
    accounts: Annotated[int, typer.Option(min=1, max=200, help="The attacker's accounts.")] = 40,
    sign_ins: Annotated[
        int, typer.Option(min=5, max=100, help="The bystander's sign-ins per phase.")
    ] = 60,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Worker processes.")] = 1,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Where the workers count; needed for 2 or more.")
    ] = None,
) -> None:
    """The bystander's sign-in latency without and with an attacker hashing at the quota."""
    if workers > 1 and redis_url is None:
        raise typer.BadParameter("workers count apart without a shared store: give --redis")
    port = processes.free_port()
    with tempfile.TemporaryDirectory() as directory:
        base = database.server_env(database.sqlite_url(Path(directory)))
        env = {
            # The default sign-in quota (the benchmarks' common environment lifts it).
            "CONDUIT_RATE_LIMIT_SIGN_IN__QUOTA": "20",
            "CONDUIT_RATE_LIMIT_SIGN_IN__WINDOW_SECONDS": "60",
            "CONDUIT_HTTP_TRUSTED_PROXIES": "127.0.0.1",
            **servers.store_env(redis_url, f"{servers.KEY_PREFIX}-hashing"),
        }
        target = servers.Target("hashing", port, servers.serve_command(port, workers), env)
        with servers.running([target], base, Path(directory)):
            phases = asyncio.run(_phases(target.base_url, accounts, sign_ins))
        if redis_url is not None:
            servers.clear_store(redis_url)
    print(
        f"{workers} worker(s), default limits (sign-in 20 a minute per address and per account);"
        f" the bystander signs in {sign_ins} times per phase, one at a time\n"
    )
    print(
        "| attacker | bystander p50 ms | p99 ms | max ms | bystander statuses"
        " | password changes made (hashes) | phase s |"
    )
    print("|---|--:|--:|--:|---|--:|--:|")
    for phase in phases:
        statuses = ", ".join(
            f"{count}x {status}" for status, count in sorted(phase.statuses.items())
        )
        print(
            f"| {phase.name} | {statistics.median(phase.latencies_ms):.0f}"
            f" | {_percentile(phase.latencies_ms, 0.99):.0f} | {max(phase.latencies_ms):.0f}"
            f" | {statuses} | {phase.hashes} | {phase.seconds:.1f} |"
        )


if __name__ == "__main__":
    app()
