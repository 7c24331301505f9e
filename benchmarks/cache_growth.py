"""What one anonymous client, within its rate limit, adds to the shared store.

Against a real `conduit serve` (two workers) on the seeded PostgreSQL database that
DATABASE_URL names (`conduit seed --scale medium`) and a Redis of the run's own, one client
sends `--requests` reads at a pace within the anonymous quota (300 a minute): distinct list
pages of 100 articles, distinct articles, and articles that do not exist. It prints the
responses by status and the growth of Redis's `used_memory`, and the deployment's keys by kind
(number, bytes by `MEMORY USAGE`). Twice: with the defaults, and with the bounds lifted (fills
and entry size), which is what the cache stored before they existed.

    DATABASE_URL=postgresql://... .tools/bin/uv run python -m benchmarks.cache_growth

See docs/caching.md ("Bounds").
"""

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import redis

from benchmarks.setup import database, processes, servers
from benchmarks.setup.redis_server import private_redis

_PACE_SECONDS = 60 / 280
_UNBOUNDED = {
    "CONDUIT_RATE_LIMIT_CACHE_FILLS__QUOTA": "1000000",
    "CONDUIT_CACHE_MAX_ENTRY_BYTES": str(16 * 1024**2),
}


def _paths(slugs: list[str], requests: int) -> list[str]:
    """Thirds: list pages, articles, articles that do not exist; each path once."""
    paths = []
    for n in range(requests):
        match n % 3:
            case 0:
                paths.append(f"/api/articles?limit=100&offset={n}")
            case 1:
                paths.append(f"/api/articles/{slugs[n % len(slugs)]}")
            case _:
                paths.append(f"/api/articles/not-there-{n}")
    return paths


def _keys(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """(number, bytes) of the deployment's keys, by kind."""
    kinds: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for key in client.scan_iter(match=f"{servers.KEY_PREFIX}:*", count=1000):
        part = key.decode().split(":")
        kind = "cache versions" if part[1:3] == ["cache", "v"] else part[1]
        kind = "cache entries" if kind == "cache" else kind
        kinds[kind][0] += 1
        kinds[kind][1] += int(client.memory_usage(key) or 0)
    return {kind: (number, size) for kind, (number, size) in sorted(kinds.items())}


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


async def _slugs(requests: int) -> list[str]:
    connection = await asyncpg.connect(database.driver_url())
    try:
        rows = await connection.fetch("SELECT slug FROM articles ORDER BY id LIMIT $1", requests)
    finally:
        await connection.close()
    return [row["slug"] for row in rows]


def _run(label: str, env: dict[str, str], paths: list[str], logs: Path) -> None:
    with private_redis() as store, redis.Redis.from_url(store.url) as client:
        port = processes.free_port()
        target = servers.Target(
            "conduit",
            port,
            servers.serve_command(port, 2),
            {"REDIS_URL": store.url, "CONDUIT_REDIS_KEY_PREFIX": servers.KEY_PREFIX, **env},
        )
        with servers.running([target], os.environ, logs), httpx.Client() as http:
            before = _used_memory(client)
            statuses: collections.Counter[int] = collections.Counter()
            started = time.monotonic()
            for n, path in enumerate(paths):
                delay = started + n * _PACE_SECONDS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                statuses[http.get(target.base_url + path).status_code] += 1
            grown = _used_memory(client) - before
            keys = _keys(client)
    out = sys.stdout
    out.write(f"\n{label}: {len(paths)} requests in {time.monotonic() - started:.0f} s, ")
    out.write(", ".join(f"{count} x {status}" for status, count in sorted(statuses.items())))
    out.write(f"\n  used_memory grew by {grown / 1024**2:.2f} MiB\n")
    for kind, (number, size) in keys.items():
        out.write(f"  {kind:16} {number:5} keys {size / 1024**2:8.2f} MiB\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=280)
    requests = parser.parse_args().requests
    paths = _paths(asyncio.run(_slugs(requests)), requests)
    with tempfile.TemporaryDirectory() as logs:
        _run("bounded (the defaults)", {}, paths, Path(logs))
        _run("unbounded (fills and entry size lifted)", _UNBOUNDED, paths, Path(logs))


if __name__ == "__main__":
    main()
