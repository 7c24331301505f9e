"""The results of a run, as recorded (`Run`, its JSON), and what is written from them: the
markdown summary and the section of docs/benchmarks.md that shows the latest run of each kind
(the chart is `chart`'s; `publish` writes them all)."""

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter

from benchmarks.harness.explain import Explained
from benchmarks.harness.fixed_rate import HalfCapacity, ProbeResult
from benchmarks.harness.trials import RATIOS, ScenarioResult, TargetSummary
from benchmarks.load.loadgen import RateResult
from benchmarks.setup.baseline import Revision

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
# The heading of docs/benchmarks.md's section for the latest run of each kind.
SECTIONS = {"latest": "Latest run", "latest-scales": "Latency against scale"}
DEGRADATION_LIMIT = 2.0
HEADERS = {
    "conduit": "Conduit",
    "baseline": "baseline",
    "uncached": "uncached",
    "quiet": "quiet",
    "floor": "floor",
}
SUBJECTS = {
    "conduit": "Conduit",
    "baseline": "the baseline",
    "uncached": "the uncached Conduit",
    "quiet": "the quiet Conduit",
}
NUMBERS = {2: "both", 3: "the three", 4: "the four", 5: "the five"}
RATE_HEADER = [
    "| Measurement | target req/s | achieved req/s | p50 ms | p99 ms | max ms | errors"
    " | generator CPU s |",
    "|---|--:|--:|--:|--:|--:|--:|--:|",
]


@dataclass(frozen=True, slots=True)
class ScaleResult:
    scale: str
    database: str
    reused: bool
    seed_seconds: float | None
    counts: dict[str, int]
    scenarios: list[ScenarioResult]
    probes: dict[str, ProbeResult]
    half_capacity: dict[str, HalfCapacity]
    explain: list[Explained]


@dataclass(frozen=True, slots=True)
class Section:
    """Every scale, measured with the same number of worker processes per server."""

    workers: int
    scales: list[ScaleResult]


@dataclass(frozen=True, slots=True)
class Run:
    started_at: str
    finished_at: str
    command: str
    machine: dict[str, str]
    versions: dict[str, str]
    baseline: Revision | None
    # Whether the current code also ran with its read cache off, as the target "uncached".
    uncached: bool
    # Whether it also ran without its access log and metrics, as the target "quiet".
    quiet: bool
    options: dict[str, str | int | float]
    sections: list[Section]

    @property
    def kind(self) -> str:
        """`latest` for a run at one scale, `latest-scales` for a comparison of scales."""
        return "latest" if len(self.sections[0].scales) == 1 else "latest-scales"

    @property
    def targets(self) -> tuple[str, ...]:
        baseline = () if self.baseline is None else ("baseline",)
        uncached = ("uncached",) if self.uncached else ()
        quiet = ("quiet",) if self.quiet else ()
        return ("conduit", *baseline, *uncached, *quiet, "floor")

    @property
    def ratios(self) -> list[str]:
        return [f"{top}/{bottom}" for top, bottom in RATIOS if {top, bottom} <= {*self.targets}]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _pair(summaries: dict[str, TargetSummary], name: str, attribute: str, digits: int = 1) -> str:
    summary = summaries.get(name)
    return "-" if summary is None else f"{getattr(summary, attribute):,.{digits}f}"


def _optional(values: list[float | None], spec: str) -> str:
    return " / ".join("-" if value is None else format(value, spec) for value in values)


def ratio_label(key: str) -> str:
    return "/".join(HEADERS[name] for name in key.split("/"))


def _ratio(scenario: ScenarioResult, key: str) -> str:
    ratio = scenario.ratios.get(key)
    return "-" if ratio is None else f"{ratio.median:.2f}"


def _scenario_rows(result: ScaleResult, run: Run) -> list[str]:
    initials = " / ".join(HEADERS[name][0] for name in run.targets)
    headers = [
        "Scenario",
        *(f"{HEADERS[name]} req/s" for name in run.targets),
        *(ratio_label(key) for key in run.ratios),
        *(f"{HEADERS[name]} p50 / p99 ms" for name in run.targets),
        f"server CPU us/request ({initials})",
        f"errors ({initials})",
        f"peak RSS MiB, all processes ({initials})",
    ]
    with_redis = run.options.get("store") == "Redis"
    if with_redis:
        headers += [
            f"Redis round trips/request ({initials})",
            f"Redis scripts/request ({initials})",
            f"cache hit rate ({initials})",
        ]
    rows = ["| " + " | ".join(headers) + " |", "|---|" + "--:|" * (len(headers) - 1)]
    for scenario in result.scenarios:
        targets = scenario.targets
        present = [targets[name] for name in run.targets if name in targets]
        latency = {
            name: f"{_ms(summary.p50_ms)} / {_ms(summary.p99_ms)}"
            for name, summary in targets.items()
        }
        cells = [
            f"{scenario.name}: {scenario.title}",
            *(_pair(targets, name, "rps") for name in run.targets),
            *(_ratio(scenario, key) for key in run.ratios),
            *(latency.get(name, "-") for name in run.targets),
            " / ".join(f"{summary.cpu_us_per_request:.0f}" for summary in present),
            " / ".join(str(summary.errors) for summary in present),
            " / ".join(f"{summary.peak_rss_mib:.0f}" for summary in present),
        ]
        if with_redis:
            cells += [
                _optional([s.redis_round_trips_per_request for s in present], ".2f"),
                _optional([s.redis_scripts_per_request for s in present], ".2f"),
                _optional([s.cache_hit_rate for s in present], ".1%"),
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _rate_row(label: str, result: RateResult) -> str:
    return (
        f"| {label} | {result.target_rps:.0f} | {result.achieved_rps:.0f} | {_ms(result.p50_ms)}"
        f" | {_ms(result.p99_ms)} | {_ms(result.max_ms)} | {result.errors}"
        f" | {result.generator_cpu_seconds:.1f} |"
    )


def _probe_rows(name: str, probe: ProbeResult) -> list[str]:
    return [
        "",
        f"GET /api/articles/{{slug}} on {SUBJECTS[name]} at {probe.rate:.0f} req/s (open loop),"
        f" alone and while wrk runs logins on {probe.login_connections} connections"
        f" ({probe.login_rps:.1f} logins/s, {probe.login_errors} errors):",
        "",
        *RATE_HEADER,
        _rate_row("article, alone", probe.alone),
        _rate_row("article, during logins", probe.with_logins),
    ]


def _rate_rows(result: ScaleResult) -> list[str]:
    rows = [line for name, probe in result.probes.items() for line in _probe_rows(name, probe)]
    if result.half_capacity:
        rows += [
            "",
            "GET /api/articles?limit=20 at half of the list scenario's median req/s"
            " (open loop; latency counted from each request's scheduled start):",
            "",
            *RATE_HEADER,
            *(
                _rate_row(f"{name} (max {half.max_rps:.0f} req/s)", half.result)
                for name, half in result.half_capacity.items()
            ),
        ]
    return rows


def _explain_rows(result: ScaleResult) -> list[str]:
    if not result.explain:
        return []
    rows = [
        "",
        "EXPLAIN (ANALYZE, BUFFERS) of the statements Conduit ran (signed in):",
        "",
        "| Endpoint | Statement | Execution ms | Seq scans |",
        "|---|---|--:|---|",
    ]
    rows += [
        f"| {item.endpoint} | {item.label} | {item.execution_ms:.2f}"
        f" | {', '.join(item.seq_scans) or 'none'} |"
        for item in result.explain
    ]
    return rows


def _scale_rows(result: ScaleResult, run: Run, heading: str) -> list[str]:
    dataset = ", ".join(f"{count:,} {table}" for table, count in result.counts.items())
    origin = (
        "reused"
        if result.reused
        else f"seeded in {result.seed_seconds:.0f} s"
        if result.seed_seconds is not None
        else "seeded"
    )
    return [
        f"{heading} Scale `{result.scale}`: {dataset} ({origin})",
        "",
        *_scenario_rows(result, run),
        *_rate_rows(result),
        *_explain_rows(result),
        "",
    ]


def _comparison_rows(section: Section, heading: str) -> list[str]:
    """Latency at each scale against the first, per scenario and target."""
    scales = section.scales
    first = scales[0]
    rows = [
        f"{heading} Latency against scale",
        "",
        f"p50 and p99 at each scale, and their ratio to `{first.scale}`"
        f" (flagged past {DEGRADATION_LIMIT:.0f}x):",
        "",
        "| Scenario | Target | "
        + " | ".join(f"{s.scale} p50 / p99 ms" for s in scales)
        + " | "
        + " | ".join(f"{s.scale}/{first.scale} p50, p99" for s in scales[1:])
        + " |",
        "|---|---|" + "--:|" * (2 * len(scales) - 1),
    ]
    for scenario in first.scenarios:
        for target in scenario.targets:
            summaries = [
                next(
                    (
                        item.targets.get(target)
                        for item in s.scenarios
                        if item.name == scenario.name
                    ),
                    None,
                )
                for s in scales
            ]
            if any(summary is None for summary in summaries):
                continue
            present = [summary for summary in summaries if summary is not None]
            cells = [f"{_ms(s.p50_ms)} / {_ms(s.p99_ms)}" for s in present]
            base = present[0]
            ratios = []
            for summary in present[1:]:
                p50, p99 = summary.p50_ms / base.p50_ms, summary.p99_ms / base.p99_ms
                flag = " **over 2x**" if max(p50, p99) > DEGRADATION_LIMIT else ""
                ratios.append(f"{p50:.2f}x, {p99:.2f}x{flag}")
            rows.append(f"| {scenario.name} | {target} | {' | '.join(cells + ratios)} |")
    return [*rows, ""]


def _section_rows(section: Section, run: Run, heading: str) -> list[str]:
    rows = [line for result in section.scales for line in _scale_rows(result, run, heading)]
    if len(section.scales) > 1:
        rows += _comparison_rows(section, heading)
    return rows


def workers_label(count: int) -> str:
    return f"{count} worker process" + ("" if count == 1 else "es")


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _load_line(run: Run) -> str:
    options = run.options
    counts = [section.workers for section in run.sections]
    workers = (
        f"{workers_label(counts[0])} per server"
        if len(counts) == 1
        else f"{_listed([str(count) for count in counts])} worker processes per server, a"
        " section each (servers restarted for each)"
    )
    order = (
        "Conduit and floor alternating"
        if run.targets == ("conduit", "floor")
        else f"{_listed([HEADERS[name] for name in run.targets])} taking turns in rotating order"
    )
    ratios = _listed([ratio_label(key) for key in run.ratios])
    medians = "the median" if len(run.ratios) == 1 else "the medians"
    return (
        f"- Load: {workers}; wrk -t{options['threads']} -c{options['connections']}; per scenario"
        f" and target {options['trials']} trials of {options['duration']} s after"
        f" {options['warmup']} s of warm-up, {order}; rate limits (and read caches) kept in"
        f" {options.get('store', 'process memory')}, counted at quotas no run reaches; req/s and"
        " latencies are the medians of"
        f" the trials, {ratios} {medians} of the per-trial ratios, errors the sum (non-2xx and"
        " socket errors)."
    )


def _baseline_lines(baseline: Revision | None) -> list[str]:
    if baseline is None:
        return []
    return [
        f"- Baseline: Conduit as of `{baseline.ref}` ({baseline.commit[:12]}), from a git"
        " worktree, with the same Python, dependencies, settings and database; the database is"
        " migrated by the current code (the baseline's migrations are not run).",
    ]


def _uncached_lines(run: Run) -> list[str]:
    if not run.uncached:
        return []
    return [
        "- Uncached: the current code with its read cache off (`CONDUIT_CACHE_ENABLED=false`),"
        " otherwise as Conduit, with a Redis key prefix of its own.",
    ]


def _quiet_lines(run: Run) -> list[str]:
    if not run.quiet:
        return []
    return [
        "- Quiet: the current code without its access log and metrics"
        " (`CONDUIT_LOG_ACCESS=false`, `CONDUIT_METRICS_ENABLED=false`), otherwise as Conduit,"
        " which writes its access line for every request to its log file and counts it in"
        " its metrics: Conduit/quiet is what they cost.",
    ]


def _redis_lines(run: Run) -> list[str]:
    if run.options.get("store") != "Redis":
        return []
    return [
        "- Redis, from its counters read before and after each trial (server-wide: whatever"
        " else used that Redis during the trial is in them): round trips/request are the replies"
        " it wrote (`total_writes_processed`; commands that arrive together get one) per request"
        " served, scripts/request its EVALSHA and EVAL calls (the rate limiter), the cache hit"
        ' rate 1 - SET/MGET calls (entries rebuilt per lookup, approximately; "-" for a target'
        " that looked up less than once per two requests: its cache is off).",
    ]


def markdown(run: Run) -> str:
    machine = run.machine
    versions = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    servers = f"{NUMBERS[len(run.targets)]} servers"
    lines = [
        f"### Run of {run.started_at}",
        "",
        f"- Command: `{run.command}`",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM,"
        f" Linux {machine['kernel']}. wrk, {servers} and PostgreSQL share these cores.",
        f"- Versions: {versions}.",
        _load_line(run),
        *_baseline_lines(run.baseline),
        *_uncached_lines(run),
        *_quiet_lines(run),
        *_redis_lines(run),
        "",
    ]
    if len(run.sections) == 1:
        lines += _section_rows(run.sections[0], run, "####")
    else:
        for section in run.sections:
            lines += [f"#### {workers_label(section.workers)} per server", ""]
            lines += _section_rows(section, run, "#####")
    return "\n".join(lines)


def load(path: Path) -> Run:
    """A run as its results file recorded it."""
    return TypeAdapter(Run).validate_python(json.loads(path.read_text()))


def source(path: Path) -> str:
    """What a chart names as its source: the results file's name and the digest of its bytes."""
    return f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"


def doc_content(run: Run, stem: str) -> str:
    """The doc's section for the run recorded in `<stem>.json`: its summary and its chart."""
    return f"{markdown(run)}\n![Conduit and the floor](../benchmarks/results/{stem}.png)"


def _markers(kind: str) -> tuple[str, str]:
    return f"<!-- bench:{kind}:start -->", f"<!-- bench:{kind}:end -->"


def doc_section(text: str, kind: str) -> str | None:
    """What the doc shows between its markers for `kind`, or None when it has no section."""
    start, end = _markers(kind)
    found = re.search(re.escape(start) + "\n(.*?)\n" + re.escape(end), text, re.DOTALL)
    return None if found is None else found[1]


def with_section(text: str, kind: str, content: str) -> str:
    """The doc with `kind`'s section holding `content`: replaced where it is, or added at the end
    under its heading."""
    start, end = _markers(kind)
    replacement = f"{start}\n{content}\n{end}"
    if doc_section(text, kind) is None:
        return f"{text.rstrip()}\n\n## {SECTIONS[kind]}\n\n{replacement}\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    return pattern.sub(lambda _: replacement, text)
