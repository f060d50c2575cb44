"""``inspect`` section of the suite: what each ``<m>-inspect`` operation costs in the engine, and
what the top-activation store costs at gallery scale.

* Per operation and model, the in-process endpoint over a private copy of the built gallery and
  store (as tests/conftest.py builds them): median and p95 of repeated calls, one request each.
* The store at ``rows`` synthetic images of efficientnet_lite0's default layers (bn2: 1,280
  channels at 7x7, blocks.4: 112 at 14x14), no image copies: write rate in batches of 256
  (one commit each), bytes on disk per image, the reader's load time and the memory of its
  arrays, ``top`` latency over random channels, and ``refresh`` after each of 20 single writes
  of a live writer.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_types import Log, Section, fmt, table
from benchmarks.inspect_pictures import open_endpoints
from benchmarks.report import pct
from convscope.config import EngineConfig
from convscope.envelope import Payload
from convscope.errors import ServiceError
from convscope.index.activations import ActivationReader, ActivationRow, ActivationStore, LayerSummary
from tests.imaging import photo_bytes, rendered_digits
from tests.payloads import json_payload

LAYERS = {"bn2": (1280, 7, 7), "blocks.4": (112, 14, 14)}
"""efficientnet_lite0's default stored layers."""


def _time(endpoint, payload: Payload, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        (outcome,) = endpoint.handle([payload])
        seconds.append(time.perf_counter() - started)
        if isinstance(outcome, ServiceError):
            raise RuntimeError(f"{outcome.type}: {outcome.message}")
    return seconds


def _operations(image: bytes, layer: str) -> dict[str, Payload]:
    return {"layers": json_payload(op="layers"),
            f"feature_maps {layer}, top 16, grid": json_payload(image=image, op="feature_maps", layer=layer),
            f"feature_maps {layer}, top 16, array": json_payload(image=image, op="feature_maps", layer=layer, output="array"),
            "filters (first conv), grid": json_payload(op="filters"),
            "top_examples k=9": json_payload(op="top_examples", channel=3, k=9),
            "top_examples k=9, patches": json_payload(op="top_examples", channel=3, k=9, patches=True)}


def _endpoint_rows(repeats: int, log: Log) -> list[list[str]]:
    images = {"digits": (rendered_digits(1)[7][1], "features"), "efficientnet_lite0": (photo_bytes("chelsea"), "bn2")}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-inspect-") as tmp:
        built = open_endpoints(Path(tmp))
        try:
            for model, (image, layer) in images.items():
                for name, payload in _operations(image, layer).items():
                    seconds = _time(built[f"{model}-inspect"], payload, repeats)
                    rows.append([model, name, fmt(pct(seconds, 50), 2), fmt(pct(seconds, 95), 2)])
                    log(f"inspect: {model} {name}: {rows[-1][2]} ms")
        finally:
            for key, endpoint in built.items():
                if key.endswith("-neighbours"):
                    endpoint.index.close()
                    endpoint.store.close()
    return rows


def _synthetic(rng: np.random.Generator, start: int, count: int) -> list[ActivationRow]:
    rows = []
    for i in range(start, start + count):
        layers = {name: LayerSummary(rng.gamma(2.0, 1.0, size=c).astype(np.float32),
                                     rng.integers(0, h * w, size=c)) for name, (c, h, w) in LAYERS.items()}
        rows.append(ActivationRow(f"bench/{i:07d}", None, {}, {"image_size": [224, 224]}, layers))
    return rows


def _store_rows(count: int, log: Log) -> list[list[str]]:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        path = Path(tmp) / "activations.sqlite"
        writing = 0.0
        with ActivationStore.open(path, LAYERS) as store:
            for start in range(0, count, 256):
                batch = _synthetic(rng, start, min(256, count - start))
                began = time.perf_counter()
                store.put(batch)
                writing += time.perf_counter() - began
        size = path.stat().st_size
        began = time.perf_counter()
        reader = ActivationReader.open(path)
        reader.refresh()
        loading = time.perf_counter() - began
        arrays = reader.nbytes
        tops = []
        for channel in rng.integers(0, 1280, size=200).tolist():
            began = time.perf_counter()
            reader.top("bn2", channel, 9)
            tops.append(time.perf_counter() - began)
        refreshes = []
        with ActivationStore.open(path, LAYERS) as store:  # a live writer, as <m>-neighbours is
            for i in range(20):
                store.put(_synthetic(rng, count + i, 1))
                began = time.perf_counter()
                reader.refresh()
                refreshes.append(time.perf_counter() - began)
        reader.close()
    log(f"inspect: store of {count:,}: {count / writing:,.0f} rows/s, top p50 {pct(tops, 50):.2f} ms")
    return [[f"{count:,}", fmt(count / writing, 0), fmt(size / count / 1e3, 2), fmt(loading, 2),
             fmt(arrays / 1e6, 0), fmt(pct(tops, 50), 2), fmt(pct(tops, 99), 2),
             fmt(pct(refreshes, 50), 2)]]


def run(quick: bool, log: Log) -> Section:
    torch.set_num_threads(EngineConfig().intra_op_threads)  # as in a worker
    repeats, rows = (5, 20_000) if quick else (20, 200_000)
    lines = [f"In-process `<m>-inspect` at one torch thread (as a worker), one request per call, "
             f"{repeats} calls each (ms); feature maps run the PyTorch module (the ONNX graph has only the "
             "CAM layer as an output), patches decode the stored copy and encode a PNG each:", "",
             *table(["model", "operation", "p50 ms", "p95 ms"], _endpoint_rows(repeats, log)), "",
             f"The top-activation store with {rows:,} synthetic images of efficientnet_lite0's default layers "
             "(bn2 1,280 channels, blocks.4 112; no image copies):", "",
             *table(["images", "writes/s (256 a commit)", "KB on disk / image", "reader load s",
                     "reader arrays MB", "top k=9 p50 ms", "top p99 ms", "refresh after 1 write p50 ms"],
                    _store_rows(rows, log))]
    return Section("inspect", lines)
