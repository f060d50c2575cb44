"""Do explanations starve classification? Classification latency with and without a steady
stream of Score-CAM and SmoothGrad requests on the same server.

    .venv/bin/python benchmarks/starvation.py [--seconds 40] [--rate 8] [--write]

Starts ConvScope on free loopback ports from the built model store. Phase 1: ``efficientnet_lite0``
classifications of the chelsea photo, sent open loop at ``--rate`` per second (a fixed schedule,
so a slow answer does not slow the sender). Phase 2: the same schedule while two clients keep a
Score-CAM and a SmoothGrad request in flight at all times. Goal: classification p99 in phase 2
within 2x of phase 1. Each endpoint is its own TorchServe registration with its own worker, so
the explanation queue never holds a classification; what is left to share is the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import RELIABILITY, pct, publish  # noqa: E402
from convscope.serving import start  # noqa: E402
from tests.imaging import photo_bytes  # noqa: E402

GOAL = 2.0
EXPLANATIONS = (("efficientnet_lite0-cam", {"method": "scorecam"}),
                ("efficientnet_lite0-saliency", {"method": "smoothgrad", "samples": "25"}))


def post(server, name: str, image: bytes, fields: dict) -> requests.Response:
    return requests.post(f"{server.url('inference')}/predictions/{name}", files={"data": ("i.jpg", image)},
                         data=fields, headers={"Authorization": f"Bearer {server.keys['inference']}"}, timeout=600)


def classify_open_loop(server, image: bytes, seconds: float, rate: float) -> tuple[list[float], int]:
    """Latencies of classifications sent on a fixed schedule; and how many failed."""
    latencies, failures, lock = [], 0, threading.Lock()

    def one() -> None:
        nonlocal failures
        started = time.perf_counter()
        answer = post(server, "efficientnet_lite0", image, {"top_k": "1"})
        with lock:
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

    with ThreadPoolExecutor(32) as pool:
        begin = time.perf_counter()
        for i in range(int(seconds * rate)):
            time.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            pool.submit(one)
    return latencies, failures


def explain_forever(server, image: bytes, name: str, fields: dict, stop: threading.Event, done: list) -> None:
    while not stop.is_set():
        answer = post(server, name, image, fields)
        done.append(answer.status_code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--rate", type=float, default=8, help="classifications per second")
    parser.add_argument("--write", action="store_true", help="append the result to RELIABILITY.md")
    args = parser.parse_args()
    image = photo_bytes("chelsea")
    with tempfile.TemporaryDirectory(prefix="convscope-starve-") as tmp:
        server = start(REPO / "model_store", Path(tmp) / "run")
        try:
            for _ in range(20):  # warm-up
                post(server, "efficientnet_lite0", image, {"top_k": "1"})
            alone, failed_alone = classify_open_loop(server, image, args.seconds, args.rate)
            stop, done = threading.Event(), []
            streams = [threading.Thread(target=explain_forever, args=(server, image, name, fields, stop, done))
                       for name, fields in EXPLANATIONS]
            for stream in streams:
                stream.start()
            time.sleep(5)  # both explanation workers busy before measuring
            loaded, failed_loaded = classify_open_loop(server, image, args.seconds, args.rate)
            stop.set()
            for stream in streams:
                stream.join()
        finally:
            server.stop()
    ratio = pct(loaded, 99) / pct(alone, 99)
    verdict = "met" if ratio <= GOAL else "missed"
    text = "\n".join([
        "", f"### Explanations against classification ({time.strftime('%Y-%m-%d')})", "",
        f"`.venv/bin/python benchmarks/starvation.py --seconds {args.seconds:g} --rate {args.rate:g} --write` on "
        f"{platform.machine()}, {os.cpu_count()} cores: `efficientnet_lite0` classifications of the chelsea photo at "
        f"{args.rate:g}/s open loop, alone and then while a Score-CAM and a SmoothGrad (25 samples) request "
        f"are in flight at all times ({len(done)} explanations answered, "
        f"{sum(1 for s in done if s != 200)} not 200).", "",
        "| classification | p50 (ms) | p99 (ms) | failed |", "|---|---|---|---|",
        f"| alone | {pct(alone, 50):.1f} | {pct(alone, 99):.1f} | {failed_alone} |",
        f"| beside Score-CAM and SmoothGrad | {pct(loaded, 50):.1f} | {pct(loaded, 99):.1f} | {failed_loaded} |", "",
        f"p99 ratio {ratio:.2f}x: goal (at most {GOAL:g}x) **{verdict}**.", ""])
    publish(text, args.write, target=RELIABILITY)


if __name__ == "__main__":
    main()
