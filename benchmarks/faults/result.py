"""What the clients of a fault scenario saw, by phase (before the fault, during it, after it),
what the server logged, and which acknowledged writes the database kept."""

import itertools
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from benchmarks.faults.load import Outcome, Shape


@dataclass
class Window:
    started: float = float("inf")
    ended: float = float("inf")


Phase = Literal["before", "during", "after"]
PHASES: tuple[Phase, ...] = ("before", "during", "after")


def _phase(outcome: Outcome, window: Window) -> Phase:
    """Before: answered before the fault began; after: sent once it had ended."""
    if outcome.finished < window.started:
        return "before"
    if outcome.started < window.ended:
        return "during"
    return "after"


def _label(outcome: Outcome) -> str:
    if outcome.status is None:
        return outcome.failure or "?"
    if outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR:
        return str(outcome.status)
    return f"{outcome.status // 100}xx"


@dataclass(frozen=True, slots=True)
class LogCounts:
    lines: int
    database_reports: int
    store_reports: int
    tracebacks: int
    errors: int
    not_json: int


def log_counts(log: Path) -> LogCounts:
    counts: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        counts["lines"] += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            counts["not_json"] += 1
            counts["tracebacks"] += line.startswith("Traceback")
            continue
        event = str(record.get("event", ""))
        counts["database_reports"] += event.startswith("database_unavailable")
        counts["store_reports"] += event.startswith("shared_store_unavailable")
        counts["tracebacks"] += "exception" in record
        counts["errors"] += record.get("level") in {"error", "critical"}
    return LogCounts(
        lines=counts["lines"],
        database_reports=counts["database_reports"],
        store_reports=counts["store_reports"],
        tracebacks=counts["tracebacks"],
        errors=counts["errors"],
        not_json=counts["not_json"],
    )


@dataclass(frozen=True, slots=True)
class Result:
    # The scenario's name (benchmarks.faults.scenarios).
    scenario: str
    shape: Shape
    workers: int
    outcomes: list[Outcome]
    window: Window
    log: LogCounts
    acknowledged: set[str]
    found: set[str]

    def phase(self, phase: Phase) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if _phase(outcome, self.window) == phase]

    def table(self) -> str:
        labels = sorted({_label(outcome) for outcome in self.outcomes})
        header = ["phase", "kind", *labels, "p50 s", "max s"]
        rows = [header, ["---"] * len(header)]
        for phase, kind in itertools.product(PHASES, ("read", "write")):
            chosen = [outcome for outcome in self.phase(phase) if outcome.kind == kind]
            counted = Counter(_label(outcome) for outcome in chosen)
            durations = sorted(outcome.finished - outcome.started for outcome in chosen) or [0.0]
            rows.append(
                [
                    phase,
                    kind,
                    *(str(counted[label]) for label in labels),
                    f"{statistics.median(durations):.3f}",
                    f"{durations[-1]:.3f}",
                ]
            )
        return "\n".join("| " + " | ".join(row) + " |" for row in rows)

    def recovered_after(self) -> float:
        """Seconds from the fault's end to the end of the last request sent after it that
        failed; 0 when none did."""
        failed = [
            outcome.finished - self.window.ended
            for outcome in self.phase("after")
            if outcome.status is None or outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR
        ]
        return max(failed, default=0.0)

    def failed_once_recovered(self) -> list[Outcome]:
        """Requests sent after the first success that followed the fault and failed: once the
        service has answered one, every later request should succeed, however slow the
        machine."""
        recovered = self.window.ended + self.first_success_after()
        return [
            outcome
            for outcome in self.outcomes
            if outcome.started > recovered
            and (outcome.status is None or outcome.status >= httpx.codes.INTERNAL_SERVER_ERROR)
        ]

    def first_success_after(self) -> float:
        """Seconds from the fault's end to the first request answered with success after it."""
        return min(
            (
                outcome.finished - self.window.ended
                for outcome in self.outcomes
                if outcome.finished > self.window.ended
                and outcome.status is not None
                and outcome.status < httpx.codes.MULTIPLE_CHOICES
            ),
            default=float("nan"),
        )

    def report(self) -> str:
        unavailable = [o for o in self.outcomes if o.status == httpx.codes.SERVICE_UNAVAILABLE]
        waits = sorted(outcome.finished - outcome.started for outcome in unavailable)
        waited = (
            f"answered after {waits[0]:.2f} s to {waits[-1]:.2f} s"
            f" (median {statistics.median(waits):.2f} s)"
            if waits
            else "none"
        )
        lost = sorted(self.acknowledged - self.found)
        log = self.log
        settings = ", ".join(f"{name}={value}" for name, value in self.shape.env.items())
        lines = [
            f"## {self.scenario}: {self.shape.title}, {self.workers} worker(s)",
            f"{self.shape.readers} readers and {self.shape.writers} writer(s); fault for "
            f"{self.window.ended - self.window.started:.1f} s; {settings or 'default settings'}",
            "",
            self.table(),
            "",
            f"- 503s: {len(unavailable)}, {waited};"
            f" {sum(not o.well_formed for o in unavailable)} not in the error shape with"
            " Retry-After",
            f"- after the fault: first success {self.first_success_after():.2f} s after it ended,"
            f" last failure {self.recovered_after():.2f} s after (0: none)",
            f"- server log: {log.lines} lines; {log.database_reports} database_unavailable,"
            f" {log.store_reports} shared_store_unavailable, {log.errors} at error level,"
            f" {log.tracebacks} tracebacks, {log.not_json} not JSON",
            f"- writes: {len(self.acknowledged)} acknowledged, {len(lost)} of them missing;"
            f" {len(self.found - self.acknowledged)} stored without a 201 (their answer was a"
            " failure)",
        ]
        if lost:
            lines.append(f"- missing: {', '.join(lost[:10])}")
        return "\n".join(lines)
