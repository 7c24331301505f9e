"""A redis-server of a run's own, without persistence, on a free loopback port, that a benchmark
can stop and start again (benchmarks.faults, benchmarks.cache_growth)."""

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from benchmarks.setup import processes

READY_TIMEOUT_SECONDS = 30.0


@dataclass
class PrivateRedis:
    port: int = field(default_factory=processes.free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = processes.spawn(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            env=os.environ,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with redis.Redis.from_url(self.url) as client:
            while True:
                try:
                    client.ping()
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
                else:
                    return

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
            self.process = None


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
