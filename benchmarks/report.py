"""The results of a run: JSON, a markdown summary, a chart, and the section of
docs/benchmarks.md that shows the latest run."""

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib as mpl

from benchmarks.explain import Explained
from benchmarks.loadgen import RateResult
from benchmarks.measure import HalfCapacity, ProbeResult, ScenarioResult, TargetSummary

mpl.use("Agg")
import matplotlib.pyplot as plt

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
DEGRADATION_LIMIT = 2.0


@dataclass(frozen=True, slots=True)
class ScaleResult:
    scale: str
    database: str
    reused: bool
    seed_seconds: float | None
    counts: dict[str, int]
    scenarios: list[ScenarioResult]
    probe: ProbeResult | None
    half_capacity: dict[str, HalfCapacity]
    explain: list[Explained]


@dataclass(frozen=True, slots=True)
class Run:
    started_at: str
    finished_at: str
    command: str
    machine: dict[str, str]
    versions: dict[str, str]
    options: dict[str, str | int | float]
    scales: list[ScaleResult]

    @property
    def kind(self) -> str:
        """`latest` for a run at one scale, `latest-scales` for a comparison of scales."""
        return "latest" if len(self.scales) == 1 else "latest-scales"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _pair(summaries: dict[str, TargetSummary], name: str, attribute: str, digits: int = 1) -> str:
    summary = summaries.get(name)
    return "-" if summary is None else f"{getattr(summary, attribute):,.{digits}f}"


def _scenario_rows(result: ScaleResult) -> list[str]:
    rows = [
        "| Scenario | Conduit req/s | floor req/s | Conduit/floor | Conduit p50 / p99 ms"
        " | floor p50 / p99 ms | errors (C / f) | peak RSS MiB, all processes (C / f) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for scenario in result.scenarios:
        targets = scenario.targets
        ratio = "-" if scenario.ratio is None else f"{scenario.ratio:.2f}"
        latency = {
            name: f"{_ms(summary.p50_ms)} / {_ms(summary.p99_ms)}"
            for name, summary in targets.items()
        }
        errors = " / ".join(str(summary.errors) for summary in targets.values())
        rss = " / ".join(f"{summary.peak_rss_mib:.0f}" for summary in targets.values())
        rows.append(
            f"| {scenario.name}: {scenario.title} | {_pair(targets, 'conduit', 'rps')}"
            f" | {_pair(targets, 'floor', 'rps')} | {ratio} | {latency.get('conduit', '-')}"
            f" | {latency.get('floor', '-')} | {errors} | {rss} |"
        )
    return rows


def _rate_row(label: str, result: RateResult) -> str:
    return (
        f"| {label} | {result.target_rps:.0f} | {result.achieved_rps:.0f} | {_ms(result.p50_ms)}"
        f" | {_ms(result.p99_ms)} | {_ms(result.max_ms)} | {result.errors}"
        f" | {result.generator_cpu_seconds:.1f} |"
    )


def _rate_rows(result: ScaleResult) -> list[str]:
    rows = []
    header = [
        "| Measurement | target req/s | achieved req/s | p50 ms | p99 ms | max ms | errors"
        " | generator CPU s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    if result.probe is not None:
        probe = result.probe
        rows += [
            "",
            f"GET /api/articles/{{slug}} on Conduit at {probe.rate:.0f} req/s (open loop), alone"
            f" and while wrk runs logins on {probe.login_connections} connections"
            f" ({probe.login_rps:.1f} logins/s, {probe.login_errors} errors):",
            "",
            *header,
            _rate_row("article, alone", probe.alone),
            _rate_row("article, during logins", probe.with_logins),
        ]
    if result.half_capacity:
        rows += [
            "",
            "GET /api/articles?limit=20 at half of the list scenario's median req/s"
            " (open loop; latency counted from each request's scheduled start):",
            "",
            *header,
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


def _scale_rows(result: ScaleResult) -> list[str]:
    dataset = ", ".join(f"{count:,} {table}" for table, count in result.counts.items())
    origin = (
        "reused"
        if result.reused
        else f"seeded in {result.seed_seconds:.0f} s"
        if result.seed_seconds is not None
        else "seeded"
    )
    return [
        f"#### Scale `{result.scale}`: {dataset} ({origin})",
        "",
        *_scenario_rows(result),
        *_rate_rows(result),
        *_explain_rows(result),
        "",
    ]


def _comparison_rows(run: Run) -> list[str]:
    """Latency at each scale against the first, per scenario and target."""
    first = run.scales[0]
    rows = [
        "#### Latency against scale",
        "",
        f"p50 and p99 at each scale, and their ratio to `{first.scale}`"
        f" (flagged past {DEGRADATION_LIMIT:.0f}x):",
        "",
        "| Scenario | Target | "
        + " | ".join(f"{s.scale} p50 / p99 ms" for s in run.scales)
        + " | "
        + " | ".join(f"{s.scale}/{first.scale} p50, p99" for s in run.scales[1:])
        + " |",
        "|---|---|" + "--:|" * (2 * len(run.scales) - 1),
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
                for s in run.scales
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


def markdown(run: Run) -> str:
    options = run.options
    machine = run.machine
    versions = ", ".join(f"{name} {version}" for name, version in run.versions.items())
    lines = [
        f"### Run of {run.started_at}",
        "",
        f"- Command: `{run.command}`",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM,"
        f" Linux {machine['kernel']}. wrk, both servers and PostgreSQL share these cores.",
        f"- Versions: {versions}.",
        f"- Load: {options['workers']} worker processes per server; wrk -t{options['threads']}"
        f" -c{options['connections']}; per scenario and target {options['trials']} trials of"
        f" {options['duration']} s after {options['warmup']} s of warm-up, Conduit and floor"
        " alternating; req/s and latencies are the medians of the trials, Conduit/floor the"
        " median of the per-trial ratios, errors the sum (non-2xx and socket errors).",
        "",
    ]
    for result in run.scales:
        lines += _scale_rows(result)
    if len(run.scales) > 1:
        lines += _comparison_rows(run)
    return "\n".join(lines)


def _chart(run: Run, path: Path) -> None:
    panels = 3 if len(run.scales) > 1 else 2
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.8), layout="constrained")
    result = run.scales[-1]
    names = [scenario.name for scenario in result.scenarios]
    positions = range(len(names))
    for offset, target in ((-0.2, "conduit"), (0.2, "floor")):
        values = [s.targets[target].rps if target in s.targets else 0.0 for s in result.scenarios]
        axes[0].bar([p + offset for p in positions], values, width=0.4, label=target)
    axes[0].set(title=f"Requests/s ({result.scale})", xticks=list(positions), yscale="log")
    axes[0].set_xticklabels(names, rotation=30, ha="right")
    axes[0].legend()
    shared = [s for s in result.scenarios if s.ratio is not None]
    axes[1].bar([s.name for s in shared], [s.ratio or 0.0 for s in shared], color="tab:green")
    axes[1].axhline(1.0, color="grey", linestyle="--")
    axes[1].set(title="Conduit / floor (median of trial ratios)", ylim=(0, 1.1))
    axes[1].tick_params(axis="x", rotation=30)
    if len(run.scales) > 1:
        for index, scale in enumerate(run.scales):
            p50 = [s.targets["conduit"].p50_ms for s in scale.scenarios]
            width = 0.8 / len(run.scales)
            axes[2].bar(
                [p + index * width for p in range(len(p50))], p50, width=width, label=scale.scale
            )
        axes[2].set(title="Conduit p50 latency (ms) by scale", xticks=list(positions))
        axes[2].set_xticklabels(names, rotation=30, ha="right")
        axes[2].legend()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _update_doc(run: Run, summary: str) -> bool:
    """Replace the doc's section for this kind of run; False when the doc has no such section."""
    start, end = f"<!-- bench:{run.kind}:start -->", f"<!-- bench:{run.kind}:end -->"
    text = DOC.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        return False
    chart = f"![Conduit and the floor](../benchmarks/results/{run.kind}.png)"
    replacement = f"{start}\n{summary}\n{chart}\n{end}"
    DOC.write_text(pattern.sub(lambda _: replacement, text))
    return True


def write(run: Run, directory: Path, *, update_doc: bool) -> Path:
    """Write <timestamp>.json, the kind's latest JSON, markdown and chart, and the doc section."""
    directory.mkdir(parents=True, exist_ok=True)
    document = json.dumps(asdict(run), indent=2, allow_nan=True) + "\n"
    stamp = re.sub(r"[^0-9T]", "", run.started_at)[:15]
    timestamped = directory / f"{stamp}.json"
    timestamped.write_text(document)
    (directory / f"{run.kind}.json").write_text(document)
    summary = markdown(run)
    (directory / f"{run.kind}.md").write_text(summary + "\n")
    _chart(run, directory / f"{run.kind}.png")
    if update_doc and not _update_doc(run, summary):
        print(f"{DOC} has no bench:{run.kind} section; left as it was")
    return timestamped
