"""Shared by the benchmark scripts: print a result section and append it to BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
RELIABILITY = BENCHMARKS.with_name("RELIABILITY.md")


def publish(text: str, write: bool, out: Path | None = None, target: Path = BENCHMARKS) -> None:
    """Print ``text``; with ``write`` append it to ``target`` (BENCHMARKS.md, or RELIABILITY.md);
    with ``out`` also save it there."""
    print(text)
    if out is not None:
        out.write_text(text)
    if write:
        with open(target, "a") as handle:
            handle.write(text)
