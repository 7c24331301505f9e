"""The benchmarks' child processes: each in a process group of its own (a server's workers with
it), stopped with its group, waited for until it answers; a free port for it; and the CPU time
and memory of its process tree."""

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

STOP_TIMEOUT_SECONDS = 20.0
ANSWER_TIMEOUT_SECONDS = 2.0
RSS_SAMPLE_SECONDS = 0.2


def free_port() -> int:
    """A loopback port nothing listens on, for a server of the benchmarks' own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something listens on the loopback port: a server started there would not bind,
    and the one there would answer in its place."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def spawn(
    command: Sequence[str], *, env: Mapping[str, str], output: Path | None = None
) -> subprocess.Popen[bytes]:
    """`command` in a new session, its standard output and error to `output` (discarded when
    None)."""
    if output is None:
        return subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    with output.open("wb") as log:
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group, SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def started(
    command: Sequence[str], *, env: Mapping[str, str], output: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`spawn`, and `stop` on the way out."""
    process = spawn(command, env=env, output=output)
    try:
        yield process
    finally:
        stop(process)


def wait_until_answers(
    url: str,
    process: subprocess.Popen[bytes],
    *,
    timeout: float,
    interval: float,
    log: Path | None = None,
) -> None:
    """Send GET `url` every `interval` seconds until it answers 200; exit (SystemExit, pointing
    at the process's `log`) when the process exits first or `timeout` seconds pass."""
    seen = "" if log is None else f"; see {log}"
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=ANSWER_TIMEOUT_SECONDS) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{process.args!r} exited at start-up{seen}")
            try:
                answered = client.get(url).status_code == httpx.codes.OK
            except httpx.TransportError:  # not listening yet
                answered = False
            if answered:
                return
            time.sleep(interval)
    raise SystemExit(f"{process.args!r} did not answer within {timeout:g} s{seen}")


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
