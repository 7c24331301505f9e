"""A Redis server that a test starts and stops itself, to see what an outage does."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.threaded import START_TIMEOUT_SECONDS, free_port


class OwnRedis:
    """A redis-server of the test's own, on a port of its own. Persistent, it saves its data
    in `directory` when stopped and loads it when started again, as a Redis with snapshots
    does across a restart; otherwise it keeps nothing. With a password, clients must give it
    (`url` does)."""

    def __init__(
        self, binary: str, directory: Path, *, persistent: bool = False, password: str = ""
    ) -> None:
        self.port = free_port()
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self._argv = [
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "3600 1" if persistent else ""),
            *("--appendonly", "no", "--dir", str(directory)),
            *(("--requirepass", password) if password else ()),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def stored_keys(self) -> list[bytes]:
        client = redis.Redis.from_url(self.url)
        try:
            return list(client.scan_iter(count=1000))
        finally:
            client.close()


@contextmanager
def running(directory: Path, *, persistent: bool = False, password: str = "") -> Iterator[OwnRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(binary, directory, persistent=persistent, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
