"""Crash drill for the feature index, longer than the test suite's: N cycles of adds to
``digits-neighbours`` over a real TorchServe and a SIGKILL of its worker, at a random moment
(after the adds were acknowledged, or while a stream of adds is in flight). After every cycle,
every acknowledged id must still be found by its exact vector.

    .venv/bin/python benchmarks/index_crash.py --cycles 120 [--write]

Prints acknowledged adds, lost acknowledged adds (must be 0), kills, and the time TorchServe
took to bring a new worker up (recovery = process start + model load + index recovery).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import one_model_store, publish  # noqa: E402
from convscope.serving import start  # noqa: E402
from tests.chaos import Drill, NeighboursClient  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="append the result to BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="convscope-crash-") as tmp:
        store = one_model_store("digits", Path(tmp))
        server = start(store, Path(tmp) / "run")
        started = time.monotonic()
        try:
            client = NeighboursClient(server)
            before = client.count()
            drill = Drill(client, seed=args.seed)
            lost_after: list[int] = []
            for cycle in range(args.cycles):
                in_flight = drill.rng.random() < 0.5
                drill.cycle(cycle, adds=int(drill.rng.integers(1, 8)),
                            kill_delay=float(drill.rng.uniform(0.0, 1.0)) if in_flight else None)
                if cycle % 10 == 9 or cycle == args.cycles - 1:
                    missing = drill.missing()
                    lost_after.append(len(missing))
                    print(f"cycle {cycle + 1}: {len(drill.acked)} acknowledged, {len(missing)} lost, "
                          f"recovery p50 {statistics.median(drill.recoveries):.1f} s", flush=True)
            final_count = client.count()
        finally:
            server.stop()
    lost = lost_after[-1]
    text = "\n".join([
        "", "### Feature index crash drill", "",
        f"`.venv/bin/python benchmarks/index_crash.py --cycles {args.cycles} --seed {args.seed}` "
        f"({time.monotonic() - started:.0f} s on {platform.machine()}, {platform.node() and 'this machine'}): "
        "digits-neighbours over TorchServe, SIGKILL of its worker every cycle, about half of them "
        "mid-stream (random delay 0-1 s into a stream of adds), the rest right after acknowledged adds.", "",
        "| cycles | acknowledged adds | lost acknowledged | applied but unacknowledged | worker recovery p50 / max |",
        "|---|---|---|---|---|",
        f"| {args.cycles} | {len(drill.acked)} | **{lost}** | {final_count - before - len(drill.acked)} "
        f"| {statistics.median(drill.recoveries):.1f} s / {max(drill.recoveries):.1f} s |", ""])
    publish(text, args.write)
    if lost:
        raise SystemExit(f"{lost} acknowledged adds were lost")


if __name__ == "__main__":
    main()
