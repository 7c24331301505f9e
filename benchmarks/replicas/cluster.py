"""The run's replicated cluster with a PgBouncer in front of each server, its seeded data (part 1),
and what every part starts on it: Conduit servers and the reads they are sent."""

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
from tests.replication import (
    PREPARED_STATEMENTS_SINCE,
    PgBouncer,
    Replication,
    cluster_unavailable,
    pgbouncer,
    pgbouncer_unavailable,
    pgbouncer_version,
    replicated_cluster,
)

from benchmarks.load import wrk
from benchmarks.setup import SCRATCH, database, processes, servers
from benchmarks.setup.servers import Target
from conduit.seed.write import SEED_PASSWORD

LOGS = SCRATCH / "replicas"
SLUGS = 8
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Setup:
    cluster: Replication
    bouncers: tuple[PgBouncer, PgBouncer]
    slugs: list[str]
    email: str
    redis_url: str | None

    @property
    def replica_name(self) -> str:
        """How Conduit names the replica in its health report and metrics."""
        return f"127.0.0.1:{self.cluster.replica.port}/{self.cluster.replica.database}"

    def database_pids(self) -> list[int]:
        """Both postmasters (their trees are every backend) and both PgBouncers."""
        pid_files = [
            self.cluster.primary.data / "postmaster.pid",
            self.cluster.replica.data / "postmaster.pid",
            *(bouncer.log_path.parent / "pgbouncer.pid" for bouncer in self.bouncers),
        ]
        return [int(path.read_text().split()[0]) for path in pid_files]


def server_env(url: str) -> dict[str, str]:
    """Every server's: uncached unless a target says otherwise, nothing refused by a rate
    limit, and metrics on the serving port (development)."""
    return {
        **database.server_env(url),
        "CONDUIT_ENV": "development",
        "CONDUIT_CACHE_ENABLED": "false",
        "CONDUIT_RATE_LIMIT_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }


def target_for(setup: Setup, name: str, workers: int, env: Mapping[str, str]) -> Target:
    port = processes.free_port()
    store = servers.store_env(setup.redis_url, f"{servers.KEY_PREFIX}-replicas-{name}")
    return Target(name, port, servers.serve_command(port, workers), {**store, **env})


def _seed(cluster: Replication) -> tuple[list[str], str]:
    url = cluster.primary.url
    database.migrate(url, quiet=True)
    command = [sys.executable, "-m", "conduit", "seed", "--scale", "tiny"]
    subprocess.run(command, env=server_env(url), check=True, capture_output=True)
    cluster.primary.query("VACUUM (ANALYZE)")
    cluster.wait_for_replay()
    slugs = cluster.primary.query("SELECT slug FROM articles ORDER BY id").splitlines()
    email = cluster.primary.query("SELECT email FROM users ORDER BY id LIMIT 1")
    return slugs[:SLUGS], email


@contextlib.contextmanager
def set_up(redis_url: str | None) -> Iterator[Setup]:
    missing = cluster_unavailable() or pgbouncer_unavailable()
    if missing is not None:
        raise SystemExit(missing)
    carried = pgbouncer_version() >= PREPARED_STATEMENTS_SINCE
    extra = ["max_prepared_statements = 200"] if carried else []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(replicated_cluster(apply_delay_ms=0))
        slugs, email = _seed(cluster)
        bouncers = tuple(
            stack.enter_context(pgbouncer("127.0.0.1", server.port, extra_config=extra))
            for server in (cluster.primary, cluster.replica)
        )
        if redis_url is not None:
            servers.clear_store(redis_url)
            stack.callback(servers.clear_store, redis_url)
        yield Setup(cluster, (bouncers[0], bouncers[1]), slugs, email, redis_url)


def sign_in(base_url: str, email: str) -> str:
    user = {"email": email, "password": SEED_PASSWORD}
    response = httpx.post(f"{base_url}/api/users/login", json={"user": user}, trust_env=False)
    response.raise_for_status()
    token: str = response.json()["user"]["token"]
    return token


def uncached_reads(slugs: list[str], token: str | None) -> list[wrk.Request]:
    """The uncached reads, rotating: a page of the list, an article, the tags."""
    return [
        wrk.Request("GET", path, token)
        for slug in slugs
        for path in ("/api/articles?limit=10", f"/api/articles/{slug}", "/api/tags")
    ]
