"""Two real API processes sharing Redis, reading from a streaming replica that replays every
write two seconds late: a user's write on one process is what their next read on the other
sees, and so is the cached document anyone reads after it; an anonymous uncached read is as
stale as the replica, which `/health/ready` and the metrics report."""

import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.conftest import (
    ConduitServer,
    replicated_env,
    serving,
    shared_store_env,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LAG_MS = 2000
UNCACHED = {"CONDUIT_CACHE_ENABLED": "false"}
_REPLICA_READS = re.compile(r'^conduit_db_reads_total\{target="127\.0\.0\.1:[^"]+"\} (\S+)$', re.M)


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[ConduitServer, ConduitServer]]:
    with (
        shared_store_env("redis") as store,
        replicated_env(apply_delay_ms=LAG_MS) as database,
        serving(database | store, tmp_path, "first") as first,
        serving(
            database | store | {"CONDUIT_CACHE_ENABLED": "false"}, tmp_path, "second"
        ) as second,
    ):
        yield first, second


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _replica_reads(metrics: str) -> float:
    return sum(float(value) for value in _REPLICA_READS.findall(metrics))


async def test_a_write_on_one_process_is_read_on_the_other(
    two_processes: tuple[ConduitServer, ConduitServer],
) -> None:
    first, second = two_processes
    async with (
        httpx.AsyncClient(base_url=first.api_url, trust_env=False) as on_first,
        httpx.AsyncClient(base_url=second.api_url, trust_env=False) as on_second,
    ):
        user = {"username": "writer", "email": "writer@example.com", "password": "p" * 12}
        token = (await on_first.post("/users", json={"user": user})).json()["user"]["token"]
        article = {"title": "Lagging", "description": "d", "body": "first"}
        created = await on_first.post("/articles", headers=_auth(token), json={"article": article})
        assert created.status_code == 201, first.diagnostics()
        slug = created.json()["article"]["slug"]
        # Until the replica has it, a read of the article is the primary's (not found there).
        await anyio.sleep(LAG_MS / 1000 + 1)

        changed = await on_first.put(
            f"/articles/{slug}", headers=_auth(token), json={"article": {"body": "second"}}
        )
        assert changed.status_code == 200, first.diagnostics()
        # The writer, on the other process: their position came with their token.
        read = await on_second.get(f"/articles/{slug}", headers=_auth(token))
        assert read.json()["article"]["body"] == "second", second.diagnostics()
        # Anyone, through the cache of the first process: filled where the write is.
        read = await on_first.get(f"/articles/{slug}")
        assert read.json()["article"]["body"] == "second", first.diagnostics()
        # Anyone, uncached: the replica, two seconds behind.
        read = await on_second.get(f"/articles/{slug}")
        assert read.json()["article"]["body"] == "first", second.diagnostics()

        ready = (await on_second.get(f"{second.base_url}/health/ready")).json()
        assert set(ready["checks"]["replicas"].values()) <= {"ok", "lagging"}
        metrics = (await on_second.get(f"{second.base_url}/metrics")).text
        assert _replica_reads(metrics) > 0, metrics
