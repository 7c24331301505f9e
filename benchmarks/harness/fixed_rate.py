"""Latency at a fixed rate (benchmarks.load.loadgen): a GET alone and while wrk runs logins
(the probe), and the list at half of its measured maximum."""

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness.trials import SETTLE_SECONDS
from benchmarks.load import loadgen, wrk
from benchmarks.load.loadgen import RateResult
from benchmarks.load.wrk import Request
from benchmarks.setup.servers import Target


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """GET /api/articles/{slug} latency at a low, fixed rate: alone, then while logins run."""

    rate: float
    alone: RateResult
    with_logins: RateResult
    login_rps: float
    login_errors: int
    login_connections: int


def probe_under_logins(
    conduit: Target,
    probe: Sequence[Request],
    logins_file: Path,
    *,
    rate: float,
    seconds: int,
    login_connections: int,
) -> ProbeResult:
    time.sleep(SETTLE_SECONDS)
    alone = loadgen.run_at_rate(conduit.base_url, probe, rate=rate, seconds=seconds)
    command = wrk.command(
        conduit.base_url,
        logins_file,
        seconds=seconds + 2,
        connections=login_connections,
        threads=1,
    )
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as logins:
        time.sleep(1)
        during = loadgen.run_at_rate(conduit.base_url, probe, rate=rate, seconds=seconds)
        output, _ = logins.communicate()
    summary = wrk.parse(output)
    return ProbeResult(rate, alone, during, summary.rps, summary.errors, login_connections)


@dataclass(frozen=True, slots=True)
class HalfCapacity:
    max_rps: float
    result: RateResult


def half_capacity(
    target: Target, requests: Sequence[Request], *, max_rps: float, seconds: float
) -> HalfCapacity:
    time.sleep(SETTLE_SECONDS)
    result = loadgen.run_at_rate(target.base_url, requests, rate=max_rps / 2, seconds=seconds)
    if result.achieved_rps < 0.95 * result.target_rps:
        print(
            f"  warning: the generator reached {result.achieved_rps:.0f} of {result.target_rps:.0f}"
            " requests/s",
            file=sys.stderr,
        )
    return HalfCapacity(max_rps, result)
