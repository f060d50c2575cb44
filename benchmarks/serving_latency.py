"""Classification and features latency: the engine in-process against REST through TorchServe.

    .venv/bin/python benchmarks/serving_latency.py [--requests 200] [--write]

Both sides run here, in one run, on the same images (scikit-image's chelsea for
efficientnet_lite0, a typeset digit for digits), one request at a time (concurrency 1, batch 1).
The difference of the medians is the service's overhead: TorchServe's frontend, the worker
protocol, the envelope and JSON. With --write the table is appended to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402

from convscope import __version__  # noqa: E402
from convscope.config import EngineConfig  # noqa: E402
from convscope.endpoints import SUFFIXES, build_endpoint  # noqa: E402
from convscope.envelope import Payload  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.serving import start  # noqa: E402
from convscope.spec import load_spec  # noqa: E402
from tests.imaging import photo_bytes, rendered_digits  # noqa: E402

STORE = REPO / "model_store"
IMAGES = {"efficientnet_lite0": photo_bytes("chelsea"), "digits": rendered_digits(1)[7][1]}


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def in_process(model_name: str, endpoint: str, count: int, batch: int = 1, warmup: int = 10) -> list[float]:
    """Seconds of each of ``count`` ``handler.handle`` calls with ``batch`` copies of the model's
    image, in this process with a worker's threads (``intra_op_threads``), after ``warmup`` calls."""
    torch.set_num_threads(EngineConfig().intra_op_threads)
    model = load_model(load_spec(STORE / f"{model_name}.toml"))
    handler = build_endpoint(endpoint, model, EngineConfig())
    payloads = [Payload({"body": IMAGES[model_name]}, {"body": "image/jpeg"})] * batch
    for _ in range(warmup):
        handler.handle(payloads)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        handler.handle(payloads)
        times.append(time.perf_counter() - started)
    return times


def over_rest(server, name: str, image: bytes, count: int) -> list[float]:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {server.keys['inference']}",
                            "Content-Type": "image/jpeg"})
    url = f"{server.url()}/predictions/{name}"
    for _ in range(10):
        session.post(url, data=image, timeout=60).raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        session.post(url, data=image, timeout=60).raise_for_status()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as run_dir:
        server = start(STORE, Path(run_dir))
        try:
            for model_name in IMAGES:
                for endpoint, suffix in SUFFIXES.items():
                    name = f"{model_name}{suffix}"
                    local = percentiles(in_process(model_name, endpoint, args.requests))
                    remote = percentiles(over_rest(server, name, IMAGES[model_name], args.requests))
                    rows.append((name, *local, *remote, remote[0] - local[0]))
                    print(f"{name:30s} in-process p50 {local[0]:7.2f} ms  REST p50 {remote[0]:7.2f} ms",
                          flush=True)
        finally:
            server.stop()
    table = ["| name | in-process p50 (ms) | in-process p99 (ms) | REST p50 (ms) | REST p99 (ms) | overhead p50 (ms) |",
             "|---|---|---|---|---|---|"]
    table += [f"| `{r[0]}` | {r[1]:.2f} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} |" for r in rows]
    header = (f"\n## Serving latency, concurrency 1, batch 1 ({time.strftime('%Y-%m-%d')})\n\n"
              f"Command: `.venv/bin/python benchmarks/serving_latency.py --requests {args.requests} --write`  \n"
              f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s) per worker, "
              f"{__import__('os').cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
              f"ConvScope {__version__}; {args.requests} requests per row after 10 warm-up.\n\n")
    text = header + "\n".join(table) + "\n"
    publish(text, args.write)


if __name__ == "__main__":
    main()
