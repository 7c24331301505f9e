"""A run's results file, and everything drawn from it by one function from that file alone:
its markdown summary, its chart and, for the latest run of each kind, the section of
docs/benchmarks.md that shows them, so that a table and the chart beside it always come from
the same run. `./dev bench` saves each run through it;

    .tools/bin/uv run --group bench python -m benchmarks.harness.publish

draws again from every results file in benchmarks/results/ (after a change to the report or
the chart), without measuring anything."""

import json
from dataclasses import asdict
from pathlib import Path

from benchmarks.harness import chart, report
from benchmarks.setup import RESULTS


def save(run: report.Run, *, update_doc: bool) -> Path:
    """Write the run's results file and what is drawn from it; return the file's path. A run
    that updates the doc replaces its kind's latest results (`latest.json`: their history is in
    git); one that does not is kept beside them, named by its start, and leaves the doc's
    tables and charts as they were."""
    stamp = run.started_at.replace("-", "").replace(":", "")
    path = RESULTS / (f"{run.kind}.json" if update_doc else f"{run.kind}-{stamp}.json")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(run), indent=2, allow_nan=True) + "\n")
    publish(path)
    return path


def publish(path: Path) -> None:
    """Draw `<stem>.md` and `<stem>.png` from the results file `<stem>.json`, and the doc's
    section when the stem is a kind (`latest`, `latest-scales`)."""
    run = report.load(path)
    path.with_suffix(".md").write_text(report.markdown(run) + "\n")
    chart.draw(run, path.with_suffix(".png"), source=report.source(path))
    if path.stem in report.SECTIONS:
        content = report.doc_content(run, path.stem)
        report.DOC.write_text(report.with_section(report.DOC.read_text(), path.stem, content))


if __name__ == "__main__":
    for results in sorted(RESULTS.glob("*.json")):
        publish(results)
        print(f"{results.relative_to(RESULTS.parent.parent)}: summary, chart", end="")
        print(", docs/benchmarks.md" if results.stem in report.SECTIONS else "")
