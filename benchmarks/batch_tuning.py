"""Batch delay from measurement: classification latency alone and throughput under load, per
``max_batch_delay_ms``, for both built-in models.

    .venv/bin/python benchmarks/batch_tuning.py [--delays 0 1 2 5 10] [--seconds 10] [--write]

TorchServe's batch aggregator waits up to ``max_batch_delay_ms`` for batch-mates before it runs a
batch, so a caller alone pays the whole delay on every request; under load the queue fills while
the worker is busy and batches form without waiting. For each delay the server is started with
the classification registrations set to it (batch size as in their specs) and measured over REST:
p50 at concurrency 1 and throughput at concurrency 16 (benchmarks/loadgen.py, closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.load import images_for
from benchmarks.loadgen import client_for, closed_loop
from benchmarks.procs import exit_on_sigterm
from benchmarks.report import publish
from convscope.serving import registrations, start

STORE = REPO / "model_store"
MODELS = ("digits", "efficientnet_lite0")


async def measure(server, model: str, seconds: float) -> tuple[float, float, float]:
    client = client_for(server, "rest")
    try:
        images = images_for(model)
        await closed_loop(client, "classify", model, images, 1, 2)  # warm-up
        alone = await closed_loop(client, "classify", model, images, 1, seconds, deadline=10)
        loaded = await closed_loop(client, "classify", model, images, 16, seconds, deadline=10)
        return alone.ms(50), loaded.throughput, loaded.ms(50)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", nargs="+", type=int, default=[0, 1, 2, 5, 10])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--write", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args()
    exit_on_sigterm()
    specs = {r.name: r.serving for r in registrations(STORE) if r.name in MODELS}
    rows = []
    for delay in args.delays:
        overrides = {name: replace(s, max_batch_delay_ms=delay) for name, s in specs.items()}
        with tempfile.TemporaryDirectory(prefix="convscope-batch-") as tmp:
            server = start(STORE, Path(tmp), overrides=overrides, index_root=Path(tmp) / "index")
            try:
                for model in MODELS:
                    p50, throughput, loaded_p50 = asyncio.run(measure(server, model, args.seconds))
                    rows.append((model, specs[model].batch_size, delay, p50, throughput, loaded_p50))
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    table = ["| model | batch size | max_batch_delay_ms | p50 alone (ms) | throughput at concurrency 16 (/s) "
             "| p50 at concurrency 16 (ms) |", "|---|---|---|---|---|---|"]
    table += [f"| {m} | {b} | {d} | {p:.1f} | {t:.1f} | {lp:.0f} |" for m, b, d, p, t, lp in rows]
    text = "\n".join([
        "", f"## Batch delay (issue 9) ({time.strftime('%Y-%m-%d')})", "",
        f"`.venv/bin/python benchmarks/batch_tuning.py --delays {' '.join(map(str, args.delays))} "
        f"--seconds {args.seconds:g}{' --write' if args.write else ''}` on {platform.machine()}, "
        f"{os.cpu_count()} cores: classification over REST, one server per delay.", "", *table, ""])
    publish(text, args.write)


if __name__ == "__main__":
    main()
