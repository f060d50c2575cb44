"""Faults under load: a worker killed while clients send a steady mix, and an overload burst.

    .venv/bin/python benchmarks/faults.py [--seconds 30] [--write]

Starts ConvScope on free loopback ports from the built model store. Four clients send a steady
mix to ``digits`` (classify, features, Grad-CAM, search and add). Part 1: SIGKILL the
classification worker a third of the way in; count failed requests (they must stay within what
was in flight on the victim: at most its batch), time until a new worker answers, and count
errors after recovery (must be 0). Part 2: a burst of Score-CAM requests far beyond the queue
(``job_queue_size`` 100): the excess must be refused fast (503), not hang, and the service must
answer again as soon as the burst ends. Part 3: acknowledged index adds, then the whole server
stopped and started again on the same ports and run directory: downtime, errors afterwards
(must be 0) and the adds still there (all of them). Appends its rows to RELIABILITY.md with ``--write``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import RELIABILITY, publish  # noqa: E402
from convscope.serving import start  # noqa: E402
from tests.imaging import held_out_digits  # noqa: E402

MIX = (("digits", {}), ("digits-features", {}), ("digits-cam", {"method": "gradcam"}),
       ("digits-neighbours", {"k": "3"}), ("digits-neighbours", {"op": "add"}))


class Mix:
    """Clients sending the mix in a loop; every answer recorded with its time and status."""

    def __init__(self, server, images: list[bytes]) -> None:
        self.server, self.images = server, images
        self.answers: list[tuple[float, str, int]] = []
        self.stop = threading.Event()
        self.ids = itertools.count()
        self.lock = threading.Lock()

    def post(self, name: str, fields: dict, image: bytes) -> int:
        fields = dict(fields)
        if fields.get("op") == "add":
            fields.setdefault("id", f"faults/{next(self.ids)}")
        try:
            answer = requests.post(f"{self.server.url('inference')}/predictions/{name}",
                                   files={"data": ("d.png", image)}, data=fields, timeout=120,
                                   headers={"Authorization": f"Bearer {self.server.keys['inference']}"})
            return answer.status_code
        except requests.RequestException:
            return -1

    def client(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self.stop.is_set():
            name, fields = MIX[int(rng.integers(len(MIX)))]
            status = self.post(name, fields, self.images[int(rng.integers(len(self.images)))])
            with self.lock:
                self.answers.append((time.monotonic(), name, status))


def worker_pid(server, name: str) -> int:
    answer = requests.get(f"{server.url('management')}/models/{name}", timeout=10,
                          headers={"Authorization": f"Bearer {server.keys['management']}"})
    return int(answer.json()[0]["workers"][0]["pid"])


def kill_under_load(server, images: list[bytes], seconds: float) -> dict:
    mix = Mix(server, images)
    clients = [threading.Thread(target=mix.client, args=(i,)) for i in range(4)]
    for c in clients:
        c.start()
    time.sleep(seconds / 3)
    victim = worker_pid(server, "digits")
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    recovered_at = None
    while recovered_at is None and time.monotonic() - killed_at < 120:
        try:
            if worker_pid(server, "digits") != victim and mix.post("digits", {}, images[0]) == 200:
                recovered_at = time.monotonic()
        except (requests.RequestException, KeyError, IndexError, ValueError):
            pass
        time.sleep(0.2)
    time.sleep(seconds * 2 / 3)
    mix.stop.set()
    for c in clients:
        c.join()
    failed = [(t, n, s) for t, n, s in mix.answers if s != 200]
    after = [(t, n, s) for t, n, s in mix.answers if recovered_at and t > recovered_at + 1.0]
    return {"answers": len(mix.answers), "failed": len(failed),
            "failed_by": sorted({f"{n} {s}" for _, n, s in failed}),
            "recovery_s": (recovered_at - killed_at) if recovered_at else None,
            "after": len(after), "errors_after": sum(1 for _, _, s in after if s != 200)}


def overload(server, image: bytes, burst: int) -> dict:
    timings: list[tuple[int, float]] = []

    def one(_: int) -> None:
        started = time.monotonic()
        status = Mix(server, [image]).post("digits-cam", {"method": "scorecam"}, image)
        timings.append((status, time.monotonic() - started))

    with ThreadPoolExecutor(burst) as pool:
        list(pool.map(one, range(burst)))
    ok = Mix(server, [image]).post("digits", {}, image)
    refused = [t for s, t in timings if s == 503]
    return {"burst": burst, "200": sum(1 for s, _ in timings if s == 200), "503": len(refused),
            "other": sum(1 for s, _ in timings if s not in (200, 503)),
            "refusal_p50_ms": float(np.median(refused)) * 1e3 if refused else None,
            "refusal_max_ms": max(refused) * 1e3 if refused else None, "after": ok}


def restart_frontend(store: Path, run_dir: Path, server, images: list[bytes]):
    """Acknowledged adds, then the whole server stopped and started again on the same ports and
    run directory, with a client calling throughout: what it sees, and whether the adds stayed."""
    mix = Mix(server, images)
    added = [f"restart/{i}" for i in range(20)]
    for key in added:
        assert mix.post("digits-neighbours", {"op": "add", "id": key}, images[0]) == 200
    before = time.monotonic()
    server.stop()
    server = start(store, run_dir, ports=server.ports)
    downtime = time.monotonic() - before
    mix = Mix(server, images)
    after = [mix.post("digits", {}, images[i % len(images)]) for i in range(50)]
    answer = requests.post(f"{server.url('inference')}/predictions/digits-neighbours", json={"op": "stats"},
                           headers={"Authorization": f"Bearer {server.keys['inference']}"}, timeout=60)
    kept = sum(requests.post(f"{server.url('inference')}/predictions/digits-neighbours",  # a delete takes no image
                             json={"op": "delete", "id": key}, timeout=60,
                             headers={"Authorization": f"Bearer {server.keys['inference']}"}).status_code == 200
               for key in added)
    return server, {"downtime_s": downtime, "errors_after": sum(1 for s in after if s != 200),
                    "after": len(after), "kept": kept, "added": len(added), "stats": answer.status_code}



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--write", action="store_true", help="append the rows to RELIABILITY.md")
    args = parser.parse_args()
    images = [png for _, png in held_out_digits(1)]
    with tempfile.TemporaryDirectory(prefix="convscope-faults-") as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        (store / "digits.mar").symlink_to(REPO / "model_store" / "digits.mar")
        server = start(store, Path(tmp) / "run")
        try:
            killed = kill_under_load(server, images, args.seconds)
            burst = overload(server, images[0], args.burst)
            server, restarted = restart_frontend(store, Path(tmp) / "run", server, images)
        finally:
            server.stop()
    recovery = f"{killed['recovery_s']:.1f} s" if killed["recovery_s"] is not None else "never"
    text = "\n".join([
        "", f"## Faults under load ({time.strftime('%Y-%m-%d')})", "",
        f"`.venv/bin/python benchmarks/faults.py --seconds {args.seconds:g} --burst {args.burst} --write`: four "
        "clients send a steady mix to `digits` (classify, features, Grad-CAM, search, add); the "
        "classification worker is SIGKILLed a third of the way in. Then a burst of Score-CAM requests "
        "beyond `job_queue_size` (100).", "",
        "| fault | answers | failed | recovery | errors after recovery |", "|---|---|---|---|---|",
        f"| SIGKILL of the `digits` worker under the mix | {killed['answers']} | {killed['failed']} "
        f"({', '.join(killed['failed_by']) or 'none'}) | {recovery} | {killed['errors_after']} of {killed['after']} |",
        "", "| overload | sent at once | 200 | 503 (refused) | other | refusal p50 / max | next request |",
        "|---|---|---|---|---|---|---|",
        f"| Score-CAM burst on `digits-cam` | {burst['burst']} | {burst['200']} | {burst['503']} | {burst['other']} | "
        + (f"{burst['refusal_p50_ms']:.0f} / {burst['refusal_max_ms']:.0f} ms" if burst["503"] else "-")
        + f" | {burst['after']} |", "",
        "| fault | downtime | errors after restart | acknowledged adds kept |", "|---|---|---|---|",
        f"| the whole server stopped and started again (same ports, same run directory) | "
        f"{restarted['downtime_s']:.1f} s | {restarted['errors_after']} of {restarted['after']} | "
        f"{restarted['kept']} of {restarted['added']} |", ""])
    publish(text, args.write, target=RELIABILITY)


if __name__ == "__main__":
    main()
