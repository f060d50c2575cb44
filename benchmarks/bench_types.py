"""What one section of the benchmark suite (benchmarks/suite.py) hands back, and how it is written.

A section is markdown (prose and tables) plus its goals; the suite writes each goal as the line
``Goal: <goal> — **met** (<measured>)`` under the section's tables and gathers every goal into
the summary table at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Goal:
    """One goal of issue 9 (or the issue it points to), measured in this run."""

    row: str
    """What was measured, e.g. ``REST overhead p50, efficientnet_lite0 classify``."""
    goal: str
    """The bar, e.g. ``<= 3 ms``."""
    measured: str
    """The number, with its unit, e.g. ``2.41 ms``."""
    met: bool

    @property
    def status(self) -> str:
        return "met" if self.met else "missed"

    def line(self) -> str:
        return f"Goal: {self.row}: {self.goal} — **{self.status}** ({self.measured})"


@dataclass
class Section:
    """One subsection of the run: ``### <title>``, its markdown lines, then its goal lines. The
    title is the suite's (``suite.TITLES``), set when the section is written."""

    key: str
    lines: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    title: str = ""

    def text(self) -> str:
        goals = [g.line() + "  " for g in self.goals]
        if goals:
            goals[-1] = goals[-1].rstrip()
        return "\n".join([f"### {self.title}", "", *self.lines, "", *goals, ""]).rstrip() + "\n"


def unavailable(key: str, reason: str) -> Section:
    """A section that could not run here, saying why (never a crash of the whole suite)."""
    return Section(key, [f"not available: {reason}"])


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table; every row must have the header's column count."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row} has {len(row)} cells, the header {len(header)}")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    """``value`` rounded, or ``-`` when it was not measured (never ``nan`` in a table)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}{unit}"


Log = Callable[[str], None]


def log_to_stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)
