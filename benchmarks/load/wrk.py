"""wrk, driven by requests.lua over a file of requests."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "requests.lua"
INSTALL = "apt-get install -y wrk"
TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    token: str | None = None
    body: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"} if self.token else {}


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def ensure_installed() -> str:
    """wrk's path; installed with apt-get when missing and running as root."""
    if (path := shutil.which("wrk")) is not None:
        return path
    if os.geteuid() != 0:
        raise SystemExit(f"wrk is not installed; install it with: sudo {INSTALL}")
    print(f"wrk is missing: {INSTALL}", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(INSTALL.split(), check=True)
    if (path := shutil.which("wrk")) is None:
        raise SystemExit(f"`{INSTALL}` did not install wrk")
    return path


def write_requests(path: Path, requests: Sequence[Request]) -> Path:
    lines = (
        "\t".join(
            (
                request.method,
                request.path,
                f"Token {request.token}" if request.token else "-",
                request.body or "-",
            )
        )
        for request in requests
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].split(" [")[0]


def command(
    base_url: str, requests_file: Path, *, seconds: int, connections: int, threads: int
) -> list[str]:
    """wrk sending the requests of `requests_file` in turn, on `connections` connections, for
    `seconds`; it prints its summary as one JSON line at the end (`parse`)."""
    options = [f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={TIMEOUT_SECONDS}s"]
    return ["wrk", *options, "-s", str(SCRIPT), base_url, "--", str(requests_file)]


def run(
    base_url: str,
    requests_file: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
) -> WrkResult:
    wrk = command(
        base_url, requests_file, seconds=seconds, connections=connections, threads=threads
    )
    completed = subprocess.run(wrk, capture_output=True, text=True, check=False)
    if completed.returncode:
        raise SystemExit(f"{' '.join(wrk)} failed:\n{completed.stdout}{completed.stderr}")
    return parse(completed.stdout)


def parse(output: str) -> WrkResult:
    """The JSON line requests.lua prints when wrk is done."""
    summary = json.loads(output.strip().splitlines()[-1])
    errors = sum(
        summary[key]
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        errors=errors,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
    )
