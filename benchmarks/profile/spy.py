"""py-spy, recording a running server from outside: it reads the process's memory through
ptrace (as its parent's user, or root), so the server runs as deployed, with nothing of the
profiler in it."""

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.profile.layers import Frame

INSTALL = "uv sync --group bench"
# What py-spy says it recorded: the samples it kept, and those it could not read.
_COUNTED = re.compile(r"Samples: \d+ Errors: \d+")

Sampler = subprocess.Popen[str]


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit(f"py-spy is not installed: {INSTALL} (or ./dev bench, which installs it)")
    return found


@dataclass(frozen=True, slots=True)
class Recording:
    """The stacks py-spy saw, each with how many samples had it, and its own summary line."""

    stacks: list[tuple[list[Frame], int]]
    summary: str

    @property
    def samples(self) -> int:
        return sum(count for _, count in self.stacks)


def start(pid: int, *, seconds: int, rate: int, output: Path, native: bool) -> Sampler:
    """py-spy recording `pid` for `seconds` into `output`: `rate` samples a second of each
    thread that is busy (its idle waits are not samples). py-spy pauses the process for each
    sample: read without pausing (`--nonblocking`), a tenth to a fifth of the samples of a
    server at 6,000 req/s came out torn and were dropped, where pausing, 200 times a second,
    moved its CPU per request by less than the noise. Only the thread that holds the GIL: py-spy
    takes a thread waiting on a lock (an idle worker of the default executor) for a busy one, a
    fifth of the samples, two fifths with compiled code's frames too (`native`)."""
    command = [_py_spy(), "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(rate), "--format", "raw", "--full-filenames"]
    command += ["--output", str(output), "--gil", *(["--native"] if native else [])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(sampler: Sampler, output: Path) -> Recording:
    """Wait for py-spy to end its recording, and read it."""
    log, _ = sampler.communicate()
    if sampler.returncode:
        raise SystemExit(f"py-spy failed (ptrace refused? it needs the server's user):\n{log}")
    counted = _COUNTED.search(log)
    return Recording(parse(output.read_text()), counted[0] if counted else log.strip())


def _frame(text: str) -> Frame:
    """`function (file:line)`, `function (file)` for compiled code without lines."""
    function, _, location = text.rpartition(" (")
    location = location.removesuffix(")")
    file, _, line = location.rpartition(":")
    return Frame(function, file if line.isdigit() else location)


def parse(raw: str) -> list[tuple[list[Frame], int]]:
    """py-spy's raw format: a line per stack, its frames outermost first, separated by `;`,
    then a space and the number of samples that had it."""
    stacks = []
    for line in raw.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks.append(([_frame(frame) for frame in frames.split(";")], int(count)))
    return stacks
