"""Reads on a real streaming replica that replays the primary's WAL late
(`conduit.database.replicas`): a caller reads their own writes at once, a row another caller
created is never a stale 404, the cache never keeps what a lagging replica built after a write,
and a replica that stops or hangs costs a request no more than the replica timeout, never a 5xx.
"""

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from prometheus_client import REGISTRY

from conduit.config import CacheSettings, DatabaseSettings, Settings
from conduit.database import create_engine
from conduit.main import create_app
from conduit.migrations import upgrade
from tests.databases import POSTGRES_PASS
from tests.factories import auth, create_api_key, create_article, register
from tests.replication import Replication, replicated_cluster, require_cluster

pytestmark = [
    pytest.mark.anyio,
    POSTGRES_PASS,
]

# Long enough that nothing a test does in between reaches the replica first.
LAG_MS = 4000
REPLICA_TIMEOUT_SECONDS = 0.5
CONCURRENT_READS = 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[Replication]:
    require_cluster()
    with replicated_cluster() as started:
        yield started


@pytest.fixture(scope="module")
async def migrated(cluster: Replication) -> None:
    engine = create_engine(DatabaseSettings(url=cluster.primary.url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _replicated(
    settings: Settings, cluster: Replication, *, cache: bool, max_lag: float = 5.0
) -> Settings:
    database = DatabaseSettings(
        url=cluster.primary.url,
        replica_urls=[cluster.replica.url],
        replica_timeout_seconds=REPLICA_TIMEOUT_SECONDS,
        replica_max_lag_seconds=max_lag,
        statement_timeout_seconds=settings.database.statement_timeout_seconds,
        pool_timeout_seconds=settings.database.pool_timeout_seconds,
    )
    return settings.model_copy(
        update={
            "database": database,
            "cache": CacheSettings(enabled=cache),
            # Positions of the cluster's users, apart from any other test's.
            "redis": settings.redis.model_copy(
                update={"key_prefix": f"conduit-test-replicas-{uuid.uuid4().hex[:8]}"}
            ),
        }
    )


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[AsyncClient]:
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        await _until_replica_serves(client)
        yield client


async def _until_replica_serves(client: AsyncClient) -> None:
    deadline = time.monotonic() + 10
    while True:
        response = await client.get("/health/ready")
        assert response.status_code == 200, response.text
        replicas = response.json()["checks"]["replicas"]
        if set(replicas.values()) == {"ok"}:
            return
        assert time.monotonic() < deadline, response.text
        await anyio.sleep(0.05)


@asynccontextmanager
async def _caught_up_app(
    settings: Settings, cluster: Replication, *, cache: bool
) -> AsyncIterator[AsyncClient]:
    cluster.set_apply_delay(0)
    cluster.wait_for_replay()
    async with _serving(_replicated(settings, cluster, cache=cache)) as client:
        yield client


@pytest.fixture
async def uncached(
    settings: Settings, cluster: Replication, migrated: None
) -> AsyncIterator[AsyncClient]:
    del migrated  # requested so that the schema exists before the app starts
    async with _caught_up_app(settings, cluster, cache=False) as client:
        yield client


@pytest.fixture
async def cached(
    settings: Settings, cluster: Replication, migrated: None
) -> AsyncIterator[AsyncClient]:
    del migrated
    async with _caught_up_app(settings, cluster, cache=True) as client:
        yield client


def _reads(target: str) -> float:
    return REGISTRY.get_sample_value("conduit_db_reads_total", {"target": target}) or 0.0


def _replica_name(cluster: Replication) -> str:
    return f"127.0.0.1:{cluster.replica.port}/{cluster.replica.database}"


def _name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


async def _user_on_the_replica(client: AsyncClient, cluster: Replication) -> tuple[str, str]:
    """A new user and their token, once the replica has replayed them and serves reads."""
    username = _name()
    token = await register(client, username)
    cluster.wait_for_replay()
    await _until_replica_serves(client)
    return username, token


async def _profile(client: AsyncClient, username: str, token: str | None = None) -> Any:
    headers = auth(token) if token else {}
    response = await client.get(f"/api/profiles/{username}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["profile"]


async def _set_bio(client: AsyncClient, token: str, bio: str) -> None:
    response = await client.put("/api/user", headers=auth(token), json={"user": {"bio": bio}})
    assert response.status_code == 200, response.text


async def test_reads_go_to_a_replica_that_has_caught_up(
    uncached: AsyncClient, cluster: Replication
) -> None:
    username, _ = await _user_on_the_replica(uncached, cluster)
    before = _reads(_replica_name(cluster))
    for _ in range(3):
        await _profile(uncached, username)
    assert _reads(_replica_name(cluster)) - before == 3


async def test_a_replica_of_an_idle_primary_is_not_behind(
    settings: Settings, cluster: Replication, migrated: None
) -> None:
    """Lag is how long the replica has been behind what the primary had, not how long ago it
    last replayed a transaction: on an idle primary it stays within a short bound."""
    del migrated
    cluster.set_apply_delay(0)
    cluster.wait_for_replay()
    async with _serving(_replicated(settings, cluster, cache=False, max_lag=1.0)) as client:
        await anyio.sleep(2.5)
        ready = await client.get("/health/ready")
        assert ready.json()["checks"]["replicas"] == {_replica_name(cluster): "ok"}


async def test_the_writer_reads_their_writes_while_anonymous_reads_lag(
    uncached: AsyncClient, cluster: Replication
) -> None:
    username, token = await _user_on_the_replica(uncached, cluster)
    before = (await _profile(uncached, username))["bio"]
    cluster.set_apply_delay(LAG_MS)
    await _set_bio(uncached, token, "after")
    assert (await _profile(uncached, username, token))["bio"] == "after"
    response = await uncached.get("/api/user", headers=auth(token))
    assert response.json()["user"]["bio"] == "after"
    # Anyone else reads the replica, which has not replayed the change yet.
    assert (await _profile(uncached, username))["bio"] == before != "after"


async def test_what_a_replica_does_not_have_yet_is_found_on_the_primary(
    uncached: AsyncClient, cluster: Replication
) -> None:
    cluster.set_apply_delay(LAG_MS)
    token = await register(uncached, _name())
    article = await create_article(uncached, token, title=f"Fresh {uuid.uuid4().hex[:6]}")
    response = await uncached.get(f"/api/articles/{article['slug']}")
    assert response.status_code == 200, response.text
    # A token issued a moment ago signs in, though the replica has no such session yet.
    other = await register(uncached, _name())
    assert (await uncached.get("/api/user", headers=auth(other))).status_code == 200


async def test_a_session_ended_stays_ended_while_the_replica_lags(
    uncached: AsyncClient, cluster: Replication
) -> None:
    _, token = await _user_on_the_replica(uncached, cluster)
    cluster.set_apply_delay(LAG_MS)
    response = await uncached.post("/api/auth/logout", headers=auth(token))
    assert response.status_code == 204, response.text
    assert (await uncached.get("/api/user", headers=auth(token))).status_code == 401


async def test_a_revoked_api_key_stays_revoked_while_the_replica_lags(
    uncached: AsyncClient, cluster: Replication
) -> None:
    _, token = await _user_on_the_replica(uncached, cluster)
    api_key = await create_api_key(uncached, token, scopes=["read"])
    cluster.wait_for_replay()
    key = {"X-API-Key": api_key["key"]}
    assert (await uncached.get("/api/user", headers=key)).status_code == 200
    cluster.set_apply_delay(LAG_MS)
    revoked = await uncached.delete(f"/api/user/api-keys/{api_key['id']}", headers=auth(token))
    assert revoked.status_code == 204, revoked.text
    # The key names no user until it is looked up, on the replica that still has it: its
    # owner's last write sends the lookup to the primary again.
    assert (await uncached.get("/api/user", headers=key)).status_code == 401


async def test_the_cache_is_never_filled_from_a_replica_behind_the_write(
    cached: AsyncClient, cluster: Replication
) -> None:
    token = await register(cached, _name())
    article = await create_article(cached, token, title=f"Old {uuid.uuid4().hex[:6]}")
    slug = article["slug"]
    cluster.wait_for_replay()
    await _until_replica_serves(cached)
    assert (await cached.get(f"/api/articles/{slug}")).json()["article"]["body"] == article["body"]
    cluster.set_apply_delay(LAG_MS)
    response = await cached.put(
        f"/api/articles/{slug}", headers=auth(token), json={"article": {"body": "new body"}}
    )
    assert response.status_code == 200, response.text
    # Anonymous: no position of its own, but the entry's versions carry the write's.
    for _ in range(2):
        response = await cached.get(f"/api/articles/{slug}")
        assert response.json()["article"]["body"] == "new body"


async def test_a_stopped_replica_costs_no_request_an_error(
    uncached: AsyncClient, cluster: Replication
) -> None:
    username, _ = await _user_on_the_replica(uncached, cluster)
    cluster.replica.stop()
    try:
        for _ in range(5):
            await _profile(uncached, username)
        ready = await uncached.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["replicas"] == {_replica_name(cluster): "down"}
    finally:
        cluster.replica.start()
    cluster.wait_for_replay()
    await _until_replica_serves(uncached)
    before = _reads(_replica_name(cluster))
    await _profile(uncached, username)
    assert _reads(_replica_name(cluster)) == before + 1


async def test_a_hung_replica_costs_a_request_at_most_the_replica_timeout(
    uncached: AsyncClient, cluster: Replication
) -> None:
    username, _ = await _user_on_the_replica(uncached, cluster)
    cluster.replica.pause()
    answers: list[tuple[int, float]] = []

    async def read() -> None:
        started = time.monotonic()
        response = await uncached.get(f"/api/profiles/{username}")
        answers.append((response.status_code, time.monotonic() - started))

    try:
        for _ in range(3):
            async with anyio.create_task_group() as crowd:
                for _ in range(CONCURRENT_READS):
                    crowd.start_soon(read)
    finally:
        cluster.replica.resume()
    assert {status for status, _ in answers} == {200}
    # Unbounded, a read would wait for the paused server until the statement timeout (60 s
    # here); bounded, for the replica timeout, plus the primary's answer on a loaded machine.
    assert max(took for _, took in answers) < REPLICA_TIMEOUT_SECONDS + 4
