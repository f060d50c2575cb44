"""Nearest-neighbour quality on the built-in digits: label precision@10 of the 1,000 held-out
digits against the 4,000-digit training gallery, in feature space and in pixel space (the same
preprocessed 28x28 input the network sees), per metric; and recall@10 of HNSW and IVF at the
default settings against exact search.

    .venv/bin/python benchmarks/neighbours_quality.py [--write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402
from convscope.build.gallery import digit_items  # noqa: E402
from convscope.endpoints.classify import embed  # noqa: E402
from convscope.index import Entry, open_index  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.spec import IndexSpec, load_spec  # noqa: E402


def vectors(model, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features [N, 128], pixels [N, 784], labels [N]) through the service's own path."""
    items = digit_items(model, split)
    pixels = torch.stack([item.load().tensor for item in items])
    return embed(model, pixels).numpy(), pixels.flatten(1).numpy(), np.array([i.label for i in items])


def top10(gallery: np.ndarray, queries: np.ndarray, spec: IndexSpec) -> tuple[list[list[int]], float]:
    with tempfile.TemporaryDirectory() as tmp, open_index(spec, gallery.shape[1], Path(tmp), "q") as index:
        for start in range(0, len(gallery), 500):
            index.add([Entry(str(i), gallery[i]) for i in range(start, min(start + 500, len(gallery)))])
        started = time.perf_counter()
        hits = index.search(queries, 10)
        seconds = time.perf_counter() - started
    return [[int(n.id) for n in row] for row in hits], seconds / len(queries)


def measure() -> dict:
    """``precision``: (space, metric, precision@10, worst class, its precision@10) rows;
    ``recall``: (index type, recall@10 vs exact, search seconds per query) rows, exact first."""
    model = load_model(load_spec(REPO / "model_store" / "digits.toml"))
    (gf, gp, gl), (qf, qp, ql) = vectors(model, "train"), vectors(model, "held_out")
    precision = []
    for space, gallery, queries in (("feature (128-d)", gf, qf), ("pixel (784-d)", gp, qp)):
        for metric in ("cosine", "l2"):
            hits, _ = top10(gallery, queries, IndexSpec(metric=metric))
            right = np.array([[gl[i] == want for i in row] for row, want in zip(hits, ql)])
            per_class = {c: right[ql == c].mean() for c in np.unique(ql)}
            worst = min(per_class, key=per_class.get)
            precision.append((space, metric, float(right.mean()), worst, float(per_class[worst])))
    exact, exact_s = top10(gf, qf, IndexSpec())
    recall = [("flat (exact)", 1.0, exact_s)]
    for kind in ("hnsw", "ivf"):
        hits, seconds = top10(gf, qf, IndexSpec(type=kind))
        recall.append((kind, float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(hits, exact)])), seconds))
    return {"precision": precision, "recall": recall}


def tables(result: dict) -> list[str]:
    rows = ["| space | metric | precision@10 | worst class (its precision@10) |", "|---|---|---|---|"]
    rows += [f"| {space} | {metric} | {p:.4f} | {worst} ({wp:.3f}) |"
             for space, metric, p, worst, wp in result["precision"]]
    rows += ["", "| index (defaults) | recall@10 vs exact | search time per query |", "|---|---|---|"]
    rows += [f"| {kind} | {r:.4f} | {s * 1e3:.3f} ms |" for kind, r, s in result["recall"]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text = "\n".join(["", "## Nearest-neighbour quality on digits (issue 5)", "",
                      "Command: `.venv/bin/python benchmarks/neighbours_quality.py`. 1,000 held-out MNIST "
                      "digits queried against the 4,000 training digits (the built-in gallery); a neighbour "
                      "is right when its label is the query's. Search times are one batched call of 1,000 "
                      "queries on 2 cores, divided by 1,000.", "", *tables(measure()), ""])
    publish(text, args.write)


if __name__ == "__main__":
    main()
