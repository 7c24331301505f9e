"""`conduit serve --workers 2` with no shared store: each worker's memory would hold a cache
the other's writes never invalidate, and a writer's position for reads on replicas, so the cache
and the replicas are off, and it says so; every read sees every write, whichever worker serves
it."""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ConduitServer, database_env, serving

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

STORE_VARIABLES = frozenset({"REDIS_URL", "CONDUIT_REDIS_KEY_PREFIX"})


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ConduitServer]:
    with database_env(tmp_path) as database:
        env = {name: value for name, value in database.items() if name not in STORE_VARIABLES}
        # Never connected to: off, since a replica would serve the writer's reads from before
        # their write on the other worker (and SQLite ignores replicas).
        env["DATABASE_REPLICA_URLS"] = "postgresql://conduit@replica.invalid:5432/conduit"
        with serving(env, tmp_path, workers=2) as server:
            yield server


async def test_two_workers_without_a_shared_store_never_serve_a_stale_read(
    two_workers: ConduitServer,
) -> None:
    server = two_workers
    async with httpx.AsyncClient(base_url=server.api_url, trust_env=False) as client:
        user = {"username": "writer", "email": "writer@example.com", "password": "p" * 12}
        token = (await client.post("/users", json={"user": user})).json()["user"]["token"]
        counts = []
        for number in range(6):
            # Fresh connections, so that both workers serve reads.
            reads = [
                await client.get("/articles", headers={"Connection": "close"}) for _ in range(4)
            ]
            counts.append({read.json()["articlesCount"] for read in reads})
            article = {"title": f"Post {number}", "description": "d", "body": "b"}
            created = await client.post(
                "/articles", headers={"Authorization": f"Token {token}"}, json={"article": article}
            )
            assert created.status_code == 201, server.diagnostics()

    assert counts == [{number} for number in range(6)], server.diagnostics()
    log = server.log_path.read_text()
    assert "The read cache is off" in log
    on_postgres = "TEST_DATABASE_URL" in os.environ
    assert ("Reads on replicas are off" in log) is on_postgres
