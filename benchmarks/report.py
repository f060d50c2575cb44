"""Shared by the benchmark scripts: print a result section and append it to BENCHMARKS.md, a
percentile in milliseconds, and a model store holding one built-in model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "BENCHMARKS.md"
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


def pct(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile of ``seconds``, in milliseconds."""
    return float(np.percentile(seconds, q)) * 1e3


def one_model_store(model: str, folder: Path) -> Path:
    """``folder/store`` holding only the built ``<model>.mar`` (a link into model_store/)."""
    store = folder / "store"
    store.mkdir()
    (store / f"{model}.mar").symlink_to(REPO / "model_store" / f"{model}.mar")
    return store
