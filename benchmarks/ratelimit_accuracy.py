"""How exactly two Conduit processes enforce one rate limit together.

One client sends more than its anonymous quota allows, at a fixed rate, alternating between two
`conduit serve` processes that keep their counts in one store; the script counts what each
clock window let through, and the most let through in any interval of a window's length, against
the quota. With the counts in process memory each process counts alone, which is what a shared
store is for.

    .tools/bin/uv run python -m benchmarks.ratelimit_accuracy --redis redis://127.0.0.1:6379/0

See docs/benchmarks.md ("Rate-limit accuracy").
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

from benchmarks.setup import database, servers

CLIENT = "198.51.100.7"
ALGORITHMS = ("sliding-window", "fixed-window", "token-bucket")

app = typer.Typer(add_completion=False)


@dataclass(frozen=True, slots=True)
class Outcome:
    store: str
    algorithm: str
    sent: int
    accepted: list[float]
    other: int


def _env(store: str, redis_url: str, algorithm: str, quota: int, window: int) -> dict[str, str]:
    env = {
        "CONDUIT_RATE_LIMIT_ANONYMOUS__QUOTA": str(quota),
        "CONDUIT_RATE_LIMIT_ANONYMOUS__WINDOW_SECONDS": str(window),
        "CONDUIT_RATE_LIMIT_ANONYMOUS__ALGORITHM": algorithm,
        # The client names itself; the readiness probes count apart, as 127.0.0.1.
        "CONDUIT_HTTP_TRUSTED_PROXIES": "127.0.0.1",
    }
    if store == "redis":
        env |= {
            "REDIS_URL": redis_url,
            "CONDUIT_REDIS_KEY_PREFIX": f"accuracy-{secrets.token_hex(6)}",
        }
    return env


async def _send(urls: list[str], rate: float, seconds: float) -> tuple[int, list[float], int]:
    """GET /api/tags at `rate` a second, in turn on each of `urls`: how many were sent, when
    each accepted one was sent (Unix time), and how many got neither 200 nor 429."""
    accepted: list[float] = []
    other = 0

    async def one(client: httpx.AsyncClient, url: str, at: float) -> None:
        nonlocal other
        status = (await client.get(url)).status_code
        if status == httpx.codes.OK:
            accepted.append(at)
        elif status != httpx.codes.TOO_MANY_REQUESTS:
            other += 1

    headers = {"X-Forwarded-For": CLIENT}
    async with httpx.AsyncClient(headers=headers, timeout=10, trust_env=False) as client:
        start = time.time()
        count = int(rate * seconds)
        tasks = []
        for number in range(count):
            at = start + number / rate
            await asyncio.sleep(max(0.0, at - time.time()))
            url = f"{urls[number % len(urls)]}/api/tags"
            tasks.append(asyncio.create_task(one(client, url, time.time())))
        await asyncio.gather(*tasks)
    return count, sorted(accepted), other


def _most_in_any_interval(times: list[float], length: float) -> int:
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= length:
            first += 1
        most = max(most, last - first + 1)
    return most


def _run(
    store: str,
    algorithm: str,
    *,
    redis_url: str,
    quota: int,
    window: int,
    rate: float,
    seconds: float,
    port: int,
) -> Outcome:
    env = _env(store, redis_url, algorithm, quota, window)
    with tempfile.TemporaryDirectory() as directory:
        base = database.server_env(database.sqlite_url(Path(directory)))
        targets = [
            servers.Target(name, port + offset, servers.serve_command(port + offset, 1), env)
            for offset, name in enumerate(("first", "second"))
        ]
        with servers.running(targets, base, Path(directory)):
            sent, accepted, other = asyncio.run(
                _send([target.base_url for target in targets], rate, seconds)
            )
    return Outcome(store, algorithm, sent, accepted, other)


def _report(outcome: Outcome, quota: int, window: int) -> str:
    times = outcome.accepted
    by_window: dict[int, int] = {}
    for at in times:
        by_window[int(at // window)] = by_window.get(int(at // window), 0) + 1
    # Only the windows the run covered entirely.
    whole = sorted(by_window)[1:-1]
    per_window = [by_window[index] for index in whole] or [0]
    most = _most_in_any_interval(times, window)
    # Once the first whole window is over: the burst a fresh client is allowed is behind.
    settled = [at for at in times if whole and at >= (whole[0] + 1) * window]
    most_settled = _most_in_any_interval(settled, window)
    return (
        f"| {outcome.store} | {outcome.algorithm} | {outcome.sent} | {len(times)} | "
        f"{min(per_window)} / {statistics.median(per_window):g} / {max(per_window)} | "
        f"{most} ({most / quota:.2f}x) | {most_settled} ({most_settled / quota:.2f}x) |"
        f" {outcome.other} |"
    )


@app.command()
def main(
    *,
    redis_url: Annotated[
        str, typer.Option("--redis", help="The Redis both processes share.")
    ] = "redis://127.0.0.1:6379/0",
    stores: Annotated[str, typer.Option(help="memory and/or redis, comma-separated.")] = (
        "redis,memory"
    ),
    algorithms: Annotated[str, typer.Option(help="Comma-separated.")] = ",".join(ALGORITHMS),
    quota: Annotated[int, typer.Option(min=1)] = 50,
    window: Annotated[int, typer.Option(min=1, help="Seconds.")] = 10,
    rate: Annotated[float, typer.Option(min=1, help="Requests a second, both servers.")] = 20,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of sending per run.")] = 42,
    port: Annotated[int, typer.Option(help="The first server's port; the second's is next.")] = (
        8790
    ),
) -> None:
    """Two servers, one client over quota: what each window let through."""
    chosen_stores = [item.strip() for item in stores.split(",") if item.strip()]
    chosen_algorithms = [item.strip() for item in algorithms.split(",") if item.strip()]
    print(
        f"quota {quota} per {window} s per client; one client sends {rate:g} requests/s"
        f" ({rate * window / quota:.1f}x the quota) for {seconds:g} s, alternating between"
        " two processes\n"
    )
    print(
        "| store | algorithm | sent | accepted | accepted per clock window (min / median / max)"
        " | most in any window-long interval (x quota) | the same after the first window"
        " | neither 200 nor 429 |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for store in chosen_stores:
        for algorithm in chosen_algorithms:
            outcome = _run(
                store,
                algorithm,
                redis_url=redis_url,
                quota=quota,
                window=window,
                rate=rate,
                seconds=seconds,
                port=port,
            )
            print(_report(outcome, quota, window), flush=True)


if __name__ == "__main__":
    app()
