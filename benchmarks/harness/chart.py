"""The chart of a run's results: requests per second and the ratios, per worker count, and
latency by scale for a comparison of scales. Only this module needs matplotlib (the bench
group), so that the tests can read the reports without it."""

import math
from pathlib import Path

import matplotlib as mpl

from benchmarks.harness import report

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def _bars(axes: Axes, labels: list[str], series: dict[str, list[float]]) -> None:
    """Grouped bars: one group per label, one bar per series."""
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series.items()):
        offset = (index - (len(series) - 1) / 2) * width
        axes.bar([p + offset for p in range(len(labels))], values, width=width, label=name)
    axes.set_xticks(list(range(len(labels))))
    axes.set_xticklabels(labels, rotation=30, ha="right")
    axes.legend()


def _chart_row(row: list[Axes], section: report.Section, run: report.Run) -> None:
    result = section.scales[-1]
    names = [scenario.name for scenario in result.scenarios]
    label = f"{result.scale}, {report.workers_label(section.workers)}"
    requests = {
        target: [s.targets[target].rps if target in s.targets else 0.0 for s in result.scenarios]
        for target in run.targets
    }
    _bars(row[0], names, requests)
    row[0].set(title=f"Requests/s ({label})", yscale="log")
    shared = [s for s in result.scenarios if s.ratios]
    ratios = {
        report.ratio_label(key): [
            s.ratios[key].median if key in s.ratios else float("nan") for s in shared
        ]
        for key in run.ratios
    }
    _bars(row[1], [s.name for s in shared], ratios)
    row[1].axhline(1.0, color="grey", linestyle="--")
    measured = [value for values in ratios.values() for value in values if not math.isnan(value)]
    top = max([1.0, *measured]) * 1.1
    row[1].set(title=f"Ratios of req/s, median of trials ({label})", ylim=(0, top))
    if len(section.scales) > 1:
        p50 = {
            scale.scale: [s.targets["conduit"].p50_ms for s in scale.scenarios]
            for scale in section.scales
        }
        _bars(row[2], names, p50)
        workers = report.workers_label(section.workers)
        row[2].set(title=f"Conduit p50 latency (ms) by scale ({workers})")


def draw(run: report.Run, path: Path, *, source: str) -> None:
    """The run's chart, as a PNG at `path` whose `Source` text names the results file it was
    drawn from (`report.source`): what shows that a chart and its table agree."""
    panels = 3 if len(run.sections[0].scales) > 1 else 2
    rows = len(run.sections)
    figure, axes = plt.subplots(
        rows, panels, figsize=(6 * panels, 4.8 * rows), layout="constrained", squeeze=False
    )
    for row, section in zip(axes, run.sections, strict=True):
        _chart_row(list(row), section, run)
    figure.savefig(path, dpi=110, metadata={"Source": source})
    plt.close(figure)
