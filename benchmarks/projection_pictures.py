"""The pictures and figures of docs/neighbours.md's "Projections": ``op=project`` on
digits-neighbours in-process, over a private copy of the built gallery (4,000 training digits),
every request the JSON a client sends; and t-SNE of the same digits' raw 28x28 pixels.

    .venv/bin/python benchmarks/projection_pictures.py [--out docs/images/neighbours]

Writes digits-pca.png, digits-tsne.png, digits-umap.png and digits-pixels-tsne.png into
``--out`` and prints, per method, the seconds of the first (uncached) and a repeated (cached)
call, and the held-out accuracy of a 5-NN classifier trained on half of the 2-D points.
A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from convscope.build.digits import load_digits  # noqa: E402
from convscope.config import EngineConfig  # noqa: E402
from convscope.endpoints import build_endpoint  # noqa: E402
from convscope.index import open_index  # noqa: E402
from convscope.index.projection import Layout, project, scatter_png  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.spec import load_spec  # noqa: E402
from tests.payloads import json_payload, one  # noqa: E402
from tests.unit.test_projection import knn_accuracy  # noqa: E402

STORE = REPO / "model_store"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "neighbours")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(load_spec(STORE / "digits.toml"))
    directory = Path(tempfile.mkdtemp())
    try:
        index = open_index(model.spec.index, model.layers.feature_dim, directory / "index", "digits",
                           seed=STORE / "build" / "galleries" / "digits.csidx")
        endpoint = build_endpoint("neighbours", model, EngineConfig(), index, None, directory / "x")
        for method in ("pca", "tsne", "umap"):
            started = time.perf_counter()
            result = one(endpoint, json_payload(op="project", method=method, plot=True))
            first = time.perf_counter() - started
            started = time.perf_counter()
            again = one(endpoint, json_payload(op="project", method=method))
            cached = time.perf_counter() - started
            points = np.array([[p.x, p.y] for p in result.points])
            labels = np.array([p.label for p in result.points])
            (args.out / f"digits-{method}.png").write_bytes(result.plot)
            print(f"features {method}: {len(points)} points, {first:.1f} s, cached {cached * 1000:.0f} ms "
                  f"({again.cached}), 5-NN accuracy {knn_accuracy(points, labels):.3f}")
        index.close()
        stored = sorted((p.id, p.label) for p in result.points)
        images, _ = load_digits()
        rows = [int(i.rsplit("/", 1)[1]) for i, _ in stored]
        pixels = np.stack([images[r].reshape(-1) / 255.0 for r in rows]).astype(np.float32)
        started = time.perf_counter()
        xy = project(pixels, "tsne", 0)
        seconds = time.perf_counter() - started
        labels = np.array([label for _, label in stored])
        layout = Layout(tuple(i for i, _ in stored), tuple(labels.tolist()), xy)
        (args.out / "digits-pixels-tsne.png").write_bytes(scatter_png(layout, f"digits pixels: tsne, {len(xy)} points"))
        print(f"pixels tsne: {len(xy)} points, {seconds:.1f} s, 5-NN accuracy {knn_accuracy(xy, labels):.3f}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
