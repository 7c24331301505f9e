"""The servers under test as child processes, and the memory of their process trees."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import redis

from benchmarks import baseline as baseline_checkout

# What PostgreSQL answers a connection beyond max_connections.
TOO_MANY_CLIENTS = "too many clients already"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
RSS_SAMPLE_SECONDS = 0.2
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
    """Conduit served from a worktree's src/ (benchmarks.baseline) by this venv's Python."""
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


def _wait_ready(target: Target, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{target.name} exited at start-up; see {log}")
        try:
            if httpx.get(f"{target.base_url}/api/tags", timeout=2).status_code == httpx.codes.OK:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{target.name} did not answer within {READY_TIMEOUT_SECONDS} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (its workers), SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _log(logs: Path, target: Target) -> Path:
    return logs / f"{target.name}.log"


@contextmanager
def running(targets: list[Target], env: Mapping[str, str], logs: Path) -> Iterator[dict[str, int]]:
    """Start every target (each in a process group of its own), yield their pids, stop them."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for target in targets:
            log = _log(logs, target)
            with log.open("wb") as output:
                processes[target.name] = subprocess.Popen(
                    target.command,
                    env={**env, **target.env},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _wait_ready(target, processes[target.name], log)
        yield {name: process.pid for name, process in processes.items()}
    finally:
        for process in processes.values():
            _stop(process)


def refused_connections(targets: list[Target], logs: Path) -> list[str]:
    """The targets whose log (written by `running`) shows PostgreSQL refusing a connection."""
    return [
        target.name
        for target in targets
        if TOO_MANY_CLIENTS in _log(logs, target).read_text(errors="replace")
    ]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    children = _children()
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """User and system CPU time the process tree has used so far."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        # utime and stime, the 14th and 15th fields of proc(5), counted after the ")" of comm.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "")
    return int(line.split()[1]) if line else 0


@dataclass
class RssSampler:
    """Samples the resident memory of a process tree in the background, keeping the peaks."""

    root: int
    peak_total_kib: int = 0
    peak_process_kib: int = 0
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        tree = process_tree(self.root)
        sizes = [rss_kib(pid) for pid in tree]
        self.processes = max(self.processes, len(tree))
        self.peak_total_kib = max(self.peak_total_kib, sum(sizes))
        self.peak_process_kib = max(self.peak_process_kib, *sizes)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self._sample()

    def __enter__(self) -> "RssSampler":
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
