"""One fault scenario's run: Conduit served on a database of its own, loaded before, during and
after the fault, and what its clients saw counted."""

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

import httpx

from benchmarks.faults.load import Load, Shape
from benchmarks.faults.result import Result, Window, log_counts
from benchmarks.setup import database, processes, servers

PAGE_SIZE = 100

Fault = contextlib.AbstractAsyncContextManager[None]


def _register(base_url: str) -> str:
    user = {"username": "writer", "email": "writer@example.com", "password": "password123"}
    response = httpx.post(f"{base_url}/api/users", json={"user": user}, trust_env=False, timeout=30)
    response.raise_for_status()
    token: str = response.json()["user"]["token"]
    return token


def _first_article(base_url: str, token: str) -> str:
    article = {"title": "first", "description": "d", "body": "b", "tagList": ["fault"]}
    response = httpx.post(
        f"{base_url}/api/articles",
        json={"article": article},
        headers={"Authorization": f"Token {token}"},
        trust_env=False,
        timeout=30,
    )
    response.raise_for_status()
    slug: str = response.json()["article"]["slug"]
    return slug


def _titles(base_url: str) -> set[str]:
    titles: set[str] = set()
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as client:
        for offset in itertools.count(0, PAGE_SIZE):
            response = client.get(
                "/api/articles", params={"author": "writer", "limit": PAGE_SIZE, "offset": offset}
            )
            response.raise_for_status()
            page = [article["title"] for article in response.json()["articles"]]
            titles.update(page)
            if len(page) < PAGE_SIZE:
                return titles
    return titles


async def _drive(load: Load, shape: Shape, fault: Fault) -> Window:
    window = Window()
    async with load.running():
        await asyncio.sleep(shape.before_seconds)
        window.started = time.monotonic()
        async with fault:
            await asyncio.sleep(shape.fault_seconds)
        window.ended = time.monotonic()
        await asyncio.sleep(shape.after_seconds)
    return window


def run(
    scenario: str,
    shape: Shape,
    fault: Fault,
    *,
    url: str,
    workers: int,
    logs: Path,
    redis_url: str | None = None,
) -> Result:
    """Migrate the database at `url`, serve Conduit on it (its log in `logs`), load it through
    `fault`, and count."""
    database.migrate(url, quiet=True)
    port = processes.free_port()
    env = {
        **servers.store_env(redis_url, f"{servers.KEY_PREFIX}-faults"),
        "PYTHONUNBUFFERED": "1",
        **shape.env,
    }
    target = servers.Target(scenario, port, servers.serve_command(port, workers), env)
    with servers.running([target], database.server_env(url), logs):
        token = _register(target.base_url)
        slug = _first_article(target.base_url, token)
        load = Load(target.base_url, token, slug, shape.readers, shape.writers)
        window = asyncio.run(_drive(load, shape, fault))
        found = _titles(target.base_url)
    acknowledged = {o.title for o in load.outcomes if o.title and o.status == httpx.codes.CREATED}
    return Result(
        scenario=scenario,
        shape=shape,
        workers=workers,
        outcomes=load.outcomes,
        window=window,
        log=log_counts(logs / f"{target.name}.log"),
        acknowledged=acknowledged,
        found=found - {"first"},
    )
