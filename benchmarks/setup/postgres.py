"""A PostgreSQL cluster of a run's own, in a temporary directory on a free loopback port, that a
benchmark can stop and start again (benchmarks.faults)."""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from benchmarks.setup.processes import free_port

POSTGRES_ROOT = Path("/usr/lib/postgresql")
READY_TIMEOUT_SECONDS = 30


class StopMode(StrEnum):
    """How `pg_ctl stop` stops PostgreSQL."""

    # Sessions are terminated and the server shuts down cleanly.
    FAST = "fast"
    # As if it crashed: it recovers from its WAL when it starts again.
    IMMEDIATE = "immediate"


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def installed() -> bool:
    """Whether PostgreSQL's server programs (initdb) are here."""
    return any(POSTGRES_ROOT.glob("*/bin/initdb")) or shutil.which("initdb") is not None


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them out of PATH)."""
    found = sorted(
        POSTGRES_ROOT.glob("*/bin/initdb"), key=lambda path: int(path.parts[-3].split(".")[0])
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("initdb not found: install PostgreSQL's server programs")
    return Path(initdb).parent


@dataclass(frozen=True, slots=True)
class Cluster:
    directory: Path
    port: int
    programs: Path

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _ctl(self, *arguments: str) -> None:
        pg_ctl = str(self.programs / "pg_ctl")
        data, log = str(self.directory / "data"), str(self.directory / "postgres.log")
        subprocess.run(
            _as_postgres([pg_ctl, "-D", data, "-l", log, *arguments]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
            f" -c unix_socket_directories={self.directory} -c max_connections=200"
        )
        self._ctl("start", "-w", "-t", str(READY_TIMEOUT_SECONDS), "-o", options)

    def stop(self, mode: StopMode = StopMode.FAST) -> None:
        self._ctl("stop", "-w", "-m", mode)

    def create_database(self, name: str) -> str:
        createdb = str(self.programs / "createdb")
        subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            check=True,
            capture_output=True,
        )
        return self.url(name)


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """initdb in a temporary directory, started; stopped and removed afterwards."""
    programs = _postgres_bin()
    with tempfile.TemporaryDirectory(prefix="conduit-faults-") as directory:
        root = Path(directory)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        initdb = [str(programs / "initdb"), "-D", str(root / "data"), "-U", "postgres"]
        subprocess.run(
            _as_postgres([*initdb, "--auth=trust", "--no-sync", "-E", "UTF8"]),
            check=True,
            capture_output=True,
        )
        cluster = Cluster(root, free_port(), programs)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop(StopMode.IMMEDIATE)
