"""Part 4, staleness: on a replica that applies transactions late, how stale an anonymous
reader's view of an article is while a signed-in writer updates it, uncached and cached."""

import asyncio
import itertools
import math
import time
from dataclasses import dataclass

import httpx

from benchmarks.replicas.cluster import LOGS, Setup, server_env, target_for
from benchmarks.replicas.metrics import on_replica, scrape
from benchmarks.replicas.watch import replica_ok, server_client, watching
from benchmarks.setup import servers
from benchmarks.setup.servers import Target

WRITE_PERIOD_SECONDS = 0.1
READ_PERIOD_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Staleness:
    reads: int
    stale: int
    p50: float
    p99: float
    worst: float
    not_2xx: int
    writes: int
    own_reads: int
    own_stale: int


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


async def _write_and_read(base_url: str, token: str, slug: str, seconds: float) -> Staleness:
    acknowledged: dict[int, float] = {}
    seen: list[tuple[float, int]] = []
    own_reads = own_stale = failed = 0
    done = asyncio.Event()
    headers = {"Authorization": f"Token {token}"}

    async def write() -> None:
        nonlocal own_reads, own_stale
        # Its reads on fresh connections, on any worker: not only the one that took the write.
        async with server_client(base_url) as client, server_client(base_url, fresh=True) as reader:
            deadline = time.monotonic() + seconds
            for value in itertools.count(1):
                tick = time.monotonic()
                if tick > deadline:
                    break
                body = {"article": {"body": str(value)}}
                put = await client.put(f"/api/articles/{slug}", json=body, headers=headers)
                put.raise_for_status()
                acknowledged[value] = time.monotonic()
                read = await reader.get(f"/api/articles/{slug}", headers=headers)
                own_reads += 1
                own_stale += read.json()["article"]["body"] != str(value)
                await asyncio.sleep(max(0.0, tick + WRITE_PERIOD_SECONDS - time.monotonic()))
        done.set()

    async def read() -> None:
        nonlocal failed
        async with server_client(base_url) as client:
            while not done.is_set():
                started = time.monotonic()
                answer = await client.get(f"/api/articles/{slug}")
                if answer.status_code == httpx.codes.OK:
                    seen.append((started, int(answer.json()["article"]["body"])))
                else:
                    failed += 1
                await asyncio.sleep(max(0.0, started + READ_PERIOD_SECONDS - time.monotonic()))

    await asyncio.gather(write(), read())
    staleness = [
        max(0.0, started - acknowledged.get(value + 1, math.inf)) for started, value in seen
    ]
    return Staleness(
        reads=len(seen),
        stale=sum(value > 0 for value in staleness),
        p50=_quantile(staleness, 0.5),
        p99=_quantile(staleness, 0.99),
        worst=max(staleness, default=0.0),
        not_2xx=failed,
        writes=len(acknowledged),
        own_reads=own_reads,
        own_stale=own_stale,
    )


async def _staleness_round(
    setup: Setup, target: Target, name: str, seconds: float
) -> tuple[Staleness, str]:
    """The staleness of the reads, and where the server's reads ran (`on_replica`)."""
    base_url = target.base_url
    async with server_client(base_url) as client:
        user = {"username": f"writer-{name}", "email": f"writer-{name}@example.com"}
        registered = await client.post(
            "/api/users", json={"user": {**user, "password": "password123"}}
        )
        registered.raise_for_status()
        token = registered.json()["user"]["token"]
        article = {"title": f"lag {name}", "description": "d", "body": "0", "tagList": []}
        created = await client.post(
            "/api/articles", json={"article": article}, headers={"Authorization": f"Token {token}"}
        )
        created.raise_for_status()
        slug: str = created.json()["article"]["slug"]
    await asyncio.to_thread(setup.cluster.wait_for_replay)
    async with watching(target, setup.replica_name, [], 0) as watch:
        await replica_ok(watch)
    before = await asyncio.to_thread(scrape, base_url)
    measured = await _write_and_read(base_url, token, slug, seconds)
    return measured, on_replica(before, await asyncio.to_thread(scrape, base_url))


def run(setup: Setup, workers: int, lag_ms: int, seconds: float) -> None:
    setup.cluster.set_apply_delay(lag_ms)
    results: dict[str, tuple[Staleness, str]] = {}
    for name, cache in (("uncached", "false"), ("cached", "true")):
        env = {"DATABASE_REPLICA_URLS": setup.cluster.replica.url, "CONDUIT_CACHE_ENABLED": cache}
        target = target_for(setup, f"lag-{name}", workers, env)
        with servers.running([target], server_env(setup.cluster.primary.url), LOGS):
            results[name] = asyncio.run(_staleness_round(setup, target, name, seconds))
    print(
        f"#### Staleness: replica {lag_ms} ms behind, {workers} worker(s), writes every"
        f" {WRITE_PERIOD_SECONDS * 1000:.0f} ms for {seconds:g} s, an anonymous read every"
        f" {READ_PERIOD_SECONDS * 1000:.0f} ms\n\n"
        "| server | anonymous reads | stale | p50 s | p99 s | max s | not 2xx | writes"
        " | writer's own reads stale | reads on replica |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, (s, where) in results.items():
        print(
            f"| {name} | {s.reads} | {s.stale / max(s.reads, 1):.0%} | {s.p50:.2f}"
            f" | {s.p99:.2f} | {s.worst:.2f} | {s.not_2xx} | {s.writes}"
            f" | {s.own_stale} of {s.own_reads} | {where} |"
        )
    print(flush=True)
