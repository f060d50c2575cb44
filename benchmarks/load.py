"""Capacity per endpoint, REST and gRPC: the highest concurrency each endpoint holds for 60 s with
0 errors, and its throughput and p50/p95/p99 there.

    .venv/bin/python benchmarks/load.py [--model efficientnet_lite0] [--hold 60] [--step 8] [--write]

Starts ConvScope (TorchServe and the gateway) on free loopback ports with one model from the
built store. For each endpoint and protocol, closed-loop callers (benchmarks/loadgen.py, the
asyncio ``AsyncClient``) ramp through concurrency 1, 2, 4, ... 64 for ``--step`` seconds each; the
ramp stops at the first level with an error (a failed call, or one answered after its deadline:
1 s for classify, features and search, 5 s for Grad-CAM and gradient saliency). The last clean
level is then held for ``--hold`` seconds; if that hold sees an error the level below is held
instead. The held level is the capacity. The load generator runs on the same machine as the
server and takes its share of the cores: the figures are what one box does with its own clients.

The capacities are saved to ``var/bench/load.json`` for benchmarks/soak.py (70% of them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.loadgen import DEADLINES, ENDPOINTS, PROTOCOLS, client_for, closed_loop
from benchmarks.procs import exit_on_sigterm
from benchmarks.report import RELIABILITY, one_model_store, publish
from convscope.serving import start
from tests.imaging import held_out_digits, photo_bytes

LEVELS = (1, 2, 4, 8, 16, 32, 64)
RESULTS = REPO / "var" / "bench" / "load.json"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field")


def images_for(model: str) -> list[bytes]:
    if model == "digits":
        return [png for _, png in held_out_digits(2)]
    return [photo_bytes(name) for name in PHOTOS]


def serve_one(model: str, tmp: Path):
    """ConvScope serving ``model`` alone from a temporary store, with a fresh index root."""
    return start(one_model_store(model, tmp), tmp / "run", index_root=tmp / "index")


async def find_capacity(server, endpoint: str, protocol: str, model: str, images: list[bytes],
                        step: float, hold: float, levels=LEVELS) -> dict:
    """Ramp, then hold the last clean level (or the one below it)."""
    client = client_for(server, protocol)
    try:
        await closed_loop(client, endpoint, model, images, 1, min(step, 3))  # warm up connections and caches
        ramp, clean = [], []
        for level in levels:
            tally = await closed_loop(client, endpoint, model, images, level, step)
            ramp.append({"concurrency": level, **tally.summary()})
            if tally.failed:
                break
            clean.append(level)
        held = None
        for level in reversed(clean[-2:]):
            tally = await closed_loop(client, endpoint, model, images, level, hold)
            held = {"concurrency": level, **tally.summary()}
            if not tally.failed:
                break
        return {"endpoint": endpoint, "protocol": protocol, "ramp": ramp,
                "capacity": held if held and not held["failed"] else None, "last_hold": held}
    finally:
        await client.close()


def table(model: str, results: list[dict], args) -> str:
    rows = []
    for r in results:
        c = r["capacity"]
        ramp = ", ".join(f"{x['concurrency']}: {x['throughput']:.1f}/s"
                         + (f" ({x['failed']} err)" if x["failed"] else "") for x in r["ramp"])
        if c:
            level = f"**{c['concurrency']}**" + (" (the ramp's top)" if c["concurrency"] == LEVELS[-1] else "")
            rows.append(f"| {r['endpoint']} | {r['protocol']} | {DEADLINES[r['endpoint']]:g} s | {level} | "
                        f"{c['answered']} / {c['failed']} | {c['throughput']:.1f} | {c['p50_ms']:.0f} | "
                        f"{c['p95_ms']:.0f} | {c['p99_ms']:.0f} | {ramp} |")
        else:
            last = r["last_hold"] or {}
            rows.append(f"| {r['endpoint']} | {r['protocol']} | {DEADLINES[r['endpoint']]:g} s | none | "
                        f"{last.get('answered', 0)} / {last.get('failed', 0)} {last.get('errors', '')} | - | - | - | - | {ramp} |")
    return "\n".join([
        "", f"## Load: capacity per endpoint ({time.strftime('%Y-%m-%d')}, `{model}`)", "",
        f"`.venv/bin/python benchmarks/load.py --model {model} --hold {args.hold:g} --step {args.step:g}"
        f"{' --write' if args.write else ''}` on {platform.machine()}, {os.cpu_count()} cores; client and "
        "server on the same machine. Capacity: the highest closed-loop concurrency (1, 2, 4 ... 64) "
        f"held for {args.hold:g} s with 0 errors, where an answer later than the deadline counts as an error. "
        "REST: TorchServe's `/predictions`; gRPC: the typed gateway. Latency and throughput are of that hold.", "",
        "| endpoint | protocol | deadline | capacity (concurrency) | answered / errors | throughput (/s) "
        "| p50 (ms) | p95 (ms) | p99 (ms) | ramp (concurrency: throughput) |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--step", type=float, default=8, help="seconds per ramp level")
    parser.add_argument("--hold", type=float, default=60, help="seconds the capacity level is held")
    parser.add_argument("--write", action="store_true", help="append the table to RELIABILITY.md")
    args = parser.parse_args()
    exit_on_sigterm()
    images = images_for(args.model)
    results = []
    with tempfile.TemporaryDirectory(prefix="convscope-load-") as tmp:
        server = serve_one(args.model, Path(tmp))
        try:
            for endpoint in args.endpoints:
                for protocol in args.protocols:
                    result = asyncio.run(find_capacity(server, endpoint, protocol, args.model, images,
                                                       args.step, args.hold))
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            server.stop()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"model": args.model, "date": time.strftime("%Y-%m-%d"),
                                   "results": results}, indent=1))
    publish(table(args.model, results, args), args.write, target=RELIABILITY)


if __name__ == "__main__":
    main()
