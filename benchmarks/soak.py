"""Soak: a steady mix at 70% of the measured capacity for 30 minutes; memory and file-descriptor
drift of the frontend, the workers and the gateway, and worker restarts.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--load 0.7] [--write]

Reads the capacities that benchmarks/load.py saved (``var/bench/load.json``) and starts the same
server (one model, free loopback ports). Every endpoint and protocol with a measured capacity
gets an open-loop rate of ``load x throughput / n`` (n pairs), so the whole mix offers ``load``
of what the box serves. Every 10 s it samples RSS and open descriptors of each process group
(benchmarks/procs.py) and the workers' pids (a new pid is a restart). Drift compares the mean of
the samples just after warm-up (the second tenth of the run) with the mean of the last tenth.
Goals: drift under 10% for every group, 0 worker restarts.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.load import RESULTS, images_for, serve_one
from benchmarks.loadgen import PROTOCOLS, client_for, open_loop
from benchmarks.procs import GROUPS, exit_on_sigterm, group_usage, server_processes
from benchmarks.report import RELIABILITY, publish

GOAL = 0.10


def plan_from(capacities: dict, load: float) -> dict[tuple[str, str], float]:
    measured = [r for r in capacities["results"] if r["capacity"]]
    if not measured:
        raise SystemExit("no capacity in the load results: run benchmarks/load.py first")
    return {(r["endpoint"], r["protocol"]): load * r["capacity"]["throughput"] / len(measured)
            for r in measured}


async def sample_forever(server, every: float, samples: list, restarts: set) -> None:
    first_workers: set[int] | None = None
    while True:
        groups = server_processes(server)
        workers = set(groups["workers"])
        first_workers = workers if first_workers is None else first_workers
        restarts.update(workers - first_workers)
        samples.append((time.monotonic(), group_usage(groups)))
        await asyncio.sleep(every)


async def soak(server, plan, model: str, images: list[bytes], seconds: float, every: float):
    clients = {p: client_for(server, p) for p in PROTOCOLS}
    samples: list = []
    restarts: set[int] = set()
    sampler = asyncio.create_task(sample_forever(server, every, samples, restarts))
    try:
        tallies = await open_loop(clients, plan, model, images, seconds)
    finally:
        sampler.cancel()
        for client in clients.values():
            await client.close()
    samples.append((time.monotonic(), group_usage(server_processes(server))))
    return tallies, samples, restarts


def drift(samples: list) -> dict[str, dict]:
    """Per group: the mean of the samples of the second tenth (just after warm-up) against the
    mean of the last tenth (at least one sample each), for RSS and descriptors."""
    n = len(samples)
    base = samples[n // 10:max(n // 10 + 1, n // 5)]
    end = samples[n - max(1, n // 10):]

    def mean(window: list, group: str, which: int) -> float:
        return float(np.mean([usage[group][which] for _, usage in window]))

    out = {}
    for group in GROUPS:
        rss0, rss1 = mean(base, group, 0), mean(end, group, 0)
        fd0, fd1 = mean(base, group, 1), mean(end, group, 1)
        peak = max(usage[group][0] for _, usage in samples)
        out[group] = {"rss_mib": (rss0 / 2**20, rss1 / 2**20), "rss_drift": (rss1 - rss0) / rss0 if rss0 else 0.0,
                      "peak_mib": peak / 2**20, "fds": (fd0, fd1), "fd_drift": (fd1 - fd0) / fd0 if fd0 else 0.0}
    return out


def report(args, model: str, plan, tallies, groups: dict, restarts: set) -> str:
    ok = all(abs(g["rss_drift"]) < GOAL and abs(g["fd_drift"]) < GOAL for g in groups.values()) and not restarts
    answered = sum(t.answered for t in tallies.values())
    failed = sum(t.failed for t in tallies.values())
    traffic = [f"| {e} | {p} | {plan[(e, p)]:.2f} | {t.answered} | {t.failed} {t.errors or ''} | "
               f"{t.ms(50):.0f} | {t.ms(99):.0f} |" for (e, p), t in tallies.items()]
    memory = [f"| {group} | {g['rss_mib'][0]:.0f} → {g['rss_mib'][1]:.0f} | {g['rss_drift']:+.1%} | "
              f"{g['peak_mib']:.0f} | {g['fds'][0]:.0f} → {g['fds'][1]:.0f} | {g['fd_drift']:+.1%} |"
              for group, g in groups.items()]
    return "\n".join([
        "", f"## Soak ({time.strftime('%Y-%m-%d')}, `{model}`, {args.minutes:g} min at {args.load:.0%} of capacity)", "",
        f"`.venv/bin/python benchmarks/soak.py --minutes {args.minutes:g} --load {args.load:g}"
        f"{' --write' if args.write else ''}` on {platform.machine()}, {os.cpu_count()} cores, after "
        "benchmarks/load.py: an open-loop mix of every endpoint and protocol at "
        f"{args.load:.0%} of its measured capacity, shared equally. Drift: the mean of the last tenth of "
        "the run against the second tenth (after warm-up).", "",
        "| endpoint | protocol | rate (/s) | answered | errors | p50 (ms) | p99 (ms) |", "|---|---|---|---|---|---|---|",
        *traffic, "",
        "| process group | RSS (MiB), after warm-up → end | RSS drift | RSS peak (MiB) | descriptors | descriptor drift |",
        "|---|---|---|---|---|---|", *memory, "",
        f"{answered} calls answered, {failed} errors; worker restarts: {len(restarts)}. "
        f"Goal (drift under {GOAL:.0%} in every group, 0 worker restarts): **{'met' if ok else 'missed'}**.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the measured capacity")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--capacities", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true", help="append the result to RELIABILITY.md")
    args = parser.parse_args()
    exit_on_sigterm()
    if not args.capacities.exists():
        raise SystemExit(f"{args.capacities} not found: run benchmarks/load.py first")
    capacities = json.loads(args.capacities.read_text())
    model, plan = capacities["model"], plan_from(capacities, args.load)
    with tempfile.TemporaryDirectory(prefix="convscope-soak-") as tmp:
        server = serve_one(model, Path(tmp))
        try:
            tallies, samples, restarts = asyncio.run(
                soak(server, plan, model, images_for(model), args.minutes * 60, args.every))
        finally:
            server.stop()
    publish(report(args, model, plan, tallies, drift(samples), restarts), args.write, target=RELIABILITY)


if __name__ == "__main__":
    main()
