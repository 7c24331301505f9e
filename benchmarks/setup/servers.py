"""The servers under test: Conduit as deployed, its variants (the baseline, uncached, quiet) and
the floor, started side by side and stopped together."""

import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from benchmarks.setup import baseline as baseline_checkout
from benchmarks.setup import processes

# What PostgreSQL answers a connection beyond max_connections.
TOO_MANY_CLIENTS = "too many clients already"
READY_TIMEOUT_SECONDS = 60.0
READY_POLL_SECONDS = 0.2
# Each Conduit target keeps its keys in Redis under a prefix of its own that starts with this.
KEY_PREFIX = "conduit-bench"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    port: int
    command: list[str]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve_command(port: int, workers: int, *, access_log: bool = True) -> list[str]:
    serve = ["serve", "--port", str(port), "--workers", str(workers)]
    if not access_log:
        serve.append("--no-access-log")
    return [sys.executable, "-m", "conduit", *serve]


def store_env(redis_url: str | None, prefix: str) -> dict[str, str]:
    """Where a Conduit target keeps shared state, and its log lines as production writes them
    (JSON; the development console's rendering costs a line four times as much)."""
    deployed = {"CONDUIT_LOG_FORMAT": "json"}
    if redis_url is None:
        return deployed
    return {**deployed, "REDIS_URL": redis_url, "CONDUIT_REDIS_KEY_PREFIX": prefix}


def conduit(port: int, workers: int, redis_url: str | None) -> Target:
    return Target("conduit", port, serve_command(port, workers), store_env(redis_url, KEY_PREFIX))


def uncached(port: int, workers: int, redis_url: str | None) -> Target:
    """The same code as `conduit`, with its read cache off."""
    env = {**store_env(redis_url, f"{KEY_PREFIX}-uncached"), "CONDUIT_CACHE_ENABLED": "false"}
    return Target("uncached", port, serve_command(port, workers), env)


def quiet(port: int, workers: int, redis_url: str | None) -> Target:
    """The current Conduit without its access log and metrics."""
    env = {**store_env(redis_url, f"{KEY_PREFIX}-quiet"), "CONDUIT_METRICS_ENABLED": "false"}
    return Target("quiet", port, serve_command(port, workers, access_log=False), env)


def baseline(port: int, workers: int, source: Path, redis_url: str | None) -> Target:
    """Conduit served from a worktree's src/ (benchmarks.setup.baseline) by this venv's Python."""
    env = {**baseline_checkout.env(source), **store_env(redis_url, f"{KEY_PREFIX}-baseline")}
    return Target("baseline", port, serve_command(port, workers), env)


def clear_store(redis_url: str) -> None:
    """Delete the keys the targets keep in Redis (rate-limit counts, cache entries): a cache
    outlives its server, and the SQL that seeds or restores the database tells it nothing."""
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)


def floor(port: int, workers: int) -> Target:
    serve = ["--port", str(port), "--workers", str(workers)]
    return Target("floor", port, [sys.executable, "-m", "benchmarks.floor", *serve])


def _log(logs: Path, target: Target) -> Path:
    return logs / f"{target.name}.log"


@contextmanager
def running(targets: list[Target], env: Mapping[str, str], logs: Path) -> Iterator[dict[str, int]]:
    """Start every target, each answering `GET /api/tags` before the next starts; yield their
    pids; stop them."""
    taken = [target for target in targets if processes.port_in_use(target.port)]
    if taken:
        ports = ", ".join(f"{target.port} ({target.name})" for target in taken)
        raise SystemExit(f"already listened on: {ports}; another run? Choose other ports (--port)")
    with ExitStack() as stack:
        pids = {}
        for target in targets:
            log = _log(logs, target)
            process = stack.enter_context(
                processes.started(target.command, env={**env, **target.env}, output=log)
            )
            processes.wait_until_answers(
                f"{target.base_url}/api/tags",
                process,
                timeout=READY_TIMEOUT_SECONDS,
                interval=READY_POLL_SECONDS,
                log=log,
            )
            pids[target.name] = process.pid
        yield pids


def refused_connections(targets: list[Target], logs: Path) -> list[str]:
    """The targets whose log (written by `running`) shows PostgreSQL refusing a connection."""
    return [
        target.name
        for target in targets
        if TOO_MANY_CLIENTS in _log(logs, target).read_text(errors="replace")
    ]
