"""The benchmark suite runs and writes well-formed results (issue 9, item 4). Not a timed test:
``benchmarks/suite.py --quick`` (which starts its own ConvScope on free ports) writes its section
to a temporary file, never to BENCHMARKS.md, and this checks the shape of what it wrote: every
section, tables with consistent columns, a met/missed goal line with a number for every goal,
a summary row per goal, no NaN."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import BENCHMARKS
from benchmarks.suite import TITLES

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GOAL = re.compile(r"^Goal: (?P<row>.+): (?P<goal>.+) — \*\*(?P<status>met|missed)\*\* \((?P<measured>[^)]*\d[^)]*)\)$")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("bench") / "suite.md"
    before = BENCHMARKS.read_bytes()
    done = subprocess.run([sys.executable, "benchmarks/suite.py", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert BENCHMARKS.read_bytes() == before, "the quick suite must not touch BENCHMARKS.md"
    return out.read_text()


def tables(text: str) -> list[list[str]]:
    """Every markdown table: runs of consecutive lines that start with '|'."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def test_one_dated_section_with_header(written):
    headings = re.findall(r"^## Benchmark suite \((\d{4}-\d\d-\d\d), .+\)$", written, re.M)
    assert len(headings) == 1
    for part in ("Machine:", "Versions:", "Python", "torch", "Settings:", "batch delay"):
        assert part in written


def test_every_section_present(written):
    found = re.findall(r"^### (.+)$", written, re.M)
    assert found == [*TITLES.values(), "Summary"]
    assert "failed:" not in written


def test_tables_have_consistent_columns(written):
    found = tables(written)
    assert len(found) >= 8
    for rows in found:
        widths = {row.count("|") for row in rows}
        assert len(widths) == 1, rows
        assert re.fullmatch(r"\|(---\|)+", rows[1]), rows[:2]


def test_goal_lines_say_met_or_missed_with_a_number(written):
    lines = [line.rstrip() for line in written.splitlines() if line.startswith("Goal:")]
    assert len(lines) >= 10  # overhead (12), ONNX (4), Grad-CAM, recall at the defaults
    for line in lines:
        assert GOAL.match(line), line
    summary = written.split("### Summary", 1)[1]
    rows = [r for r in tables(summary)[0][2:]]
    assert len(rows) == len(lines)
    for line, row in zip(lines, rows):
        match = GOAL.match(line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells == [match["row"], match["goal"], match["measured"], f"**{match['status']}**"]
    assert re.search(r"^(\d+) of (\d+) goals met\.$", summary, re.M)


def test_no_nan(written):
    assert not re.search(r"\bnan\b", written, re.I)
