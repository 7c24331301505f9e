"""Every benchmark table and the chart beside it come from the same recorded run: the markdown
summaries and docs/benchmarks.md's generated sections are what `benchmarks.harness.report`
writes from the results files now, and each chart names, by digest, the results file it was
drawn from. Nothing is measured here; matplotlib (the bench group) is not needed to check a
chart."""

import struct
from pathlib import Path

import pytest
from benchmarks.harness import report
from benchmarks.setup import RESULTS

pytestmark = pytest.mark.one_pass

REGENERATE = ".tools/bin/uv run --group bench python -m benchmarks.harness.publish"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULTS_FILES = sorted(RESULTS.glob("*.json"))


def _png_text(path: Path) -> dict[str, str]:
    """A PNG's tEXt chunks (ISO 8859-1 keywords and values), where matplotlib writes its
    `metadata`."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    texts: dict[str, str] = {}
    offset = len(PNG_SIGNATURE)
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"tEXt":
            keyword, _, value = data[offset + 8 : offset + 8 + length].partition(b"\0")
            texts[keyword.decode("latin-1")] = value.decode("latin-1")
        # Length and type, the data, then its CRC.
        offset += 8 + length + 4
    return texts


def test_every_summary_and_chart_has_its_results_file() -> None:
    drawn = {path.stem for pattern in ("*.md", "*.png") for path in RESULTS.glob(pattern)}

    assert "latest" in {path.stem for path in RESULTS_FILES}
    assert drawn == {path.stem for path in RESULTS_FILES}


@pytest.mark.parametrize("results", RESULTS_FILES, ids=lambda path: path.name)
def test_the_summary_is_written_from_its_results(results: Path) -> None:
    summary = results.with_suffix(".md")

    assert summary.read_text() == report.markdown(report.load(results)) + "\n", (
        f"{summary.name} is not what {results.name} gives; regenerate: {REGENERATE}"
    )


@pytest.mark.parametrize("results", RESULTS_FILES, ids=lambda path: path.name)
def test_the_chart_was_drawn_from_its_results(results: Path) -> None:
    chart = results.with_suffix(".png")

    assert _png_text(chart).get("Source") == report.source(results), (
        f"{chart.name} was not drawn from this {results.name}; regenerate: {REGENERATE}"
    )


def test_the_doc_shows_the_latest_results_of_each_kind_with_their_chart() -> None:
    doc = report.DOC.read_text()
    for kind in report.SECTIONS:
        results = RESULTS / f"{kind}.json"
        shown = report.doc_section(doc, kind)
        if not results.exists():
            assert shown is None, f"docs/benchmarks.md shows {kind} results that are not recorded"
            continue
        expected = report.doc_content(report.load(results), kind)
        assert shown == expected, (
            f"docs/benchmarks.md's {kind} section is not what {results.name} gives;"
            f" regenerate: {REGENERATE}"
        )
        assert f"(../benchmarks/results/{kind}.png)" in expected
