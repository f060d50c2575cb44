"""Faults under load: a worker killed, a handler past its response timeout and the whole server
restarted while clients send a steady mix, and an overload burst with the processes' memory.

    .venv/bin/python benchmarks/faults.py [--seconds 30] [--burst 300] [--timeout-s 2] [--write]

Starts ConvScope on free loopback ports from the built model store plus a test archive,
``slowdigits`` (digits with only a saliency endpoint and a ``--timeout-s`` response timeout).
Four clients send a steady mix to ``digits`` (classify, features, Grad-CAM, search and add).
Part 1: SIGKILL the classification worker a third of the way in; count failed requests (they must
stay within what was in flight on the victim: at most its batch), time until a new worker
answers, and count errors after recovery (must be 0). Part 2: while the mix runs, a batch of slow
requests (512-step integrated gradients) to ``slowdigits-saliency``, far past its timeout: what
their clients get, that TorchServe replaces the worker, how long until the registration answers
again, and the mix's errors meanwhile and after (must be 0). Part 3: a burst of Score-CAM
requests far beyond the queue (``job_queue_size`` 100): the excess must be refused fast (503),
not hang; the service must answer again as soon as the burst ends; the RSS of the frontend, the
workers and the gateway is sampled every 0.5 s (baseline, peak, 10 s after). Part 4: while the
clients keep sending, the whole server stopped and started again on the same ports and run
directory: requests failed while it was down, downtime (last success before to first success
after), /ping, errors once back (must be 0) and every acknowledged add still there. Appends its
rows to RELIABILITY.md with ``--write`` (helpers in benchmarks/fault_drills.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from convscope.serving import start

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for benchmarks.* and tests.imaging, run as a script
drills = importlib.import_module("benchmarks.fault_drills")
report_module = importlib.import_module("benchmarks.report")
SLOW_NAME, Mix, RssSampler, worker_pid = drills.SLOW_NAME, drills.Mix, drills.RssSampler, drills.worker_pid


def kill_under_load(server, images: list[bytes], seconds: float) -> dict:
    mix = Mix(server, images).run()
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
    mix.halt()
    failed = [(t, n, s) for t, n, s in mix.answers if s != 200]
    after = [(t, n, s) for t, n, s in mix.answers if recovered_at and t > recovered_at + 1.0]
    return {"answers": len(mix.answers), "failed": len(failed),
            "failed_by": sorted({f"{n} {s}" for _, n, s in failed}),
            "recovery_s": (recovered_at - killed_at) if recovered_at else None,
            "after": len(after), "errors_after": sum(1 for _, _, s in after if s != 200)}


def first_ok(server, image: bytes, name: str, fields: dict, since: float, limit: float = 60) -> float | None:
    """Seconds from ``since`` until ``name`` answers 200 (tried every 0.1 s)."""
    client = Mix(server, [image])
    while time.monotonic() - since < limit:
        if client.post(name, fields, image, timeout=limit) == 200:
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def overload(server, image: bytes, burst: int, after_s: float = 10) -> dict:
    timings: list[tuple[int, float, float]] = []

    def one(_: int) -> None:
        started = time.monotonic()
        status = Mix(server, [image]).post("digits-cam", {"method": "scorecam"}, image)
        timings.append((status, time.monotonic() - started, time.monotonic()))

    with RssSampler(server, {"digits-cam worker": worker_pid(server, "digits-cam")}) as rss:
        time.sleep(3)  # the baseline
        began = time.monotonic()
        with ThreadPoolExecutor(burst) as pool:
            list(pool.map(one, range(burst)))
        ended = max(t for _, _, t in timings)
        back_cam = first_ok(server, image, "digits-cam", {"method": "gradcam"}, ended)
        back = first_ok(server, image, "digits", {}, ended)
        time.sleep(max(0.0, ended + after_s + 0.3 - time.monotonic()))
    refused = [t for s, t, _ in timings if s == 503]
    return {"burst": burst, "200": sum(1 for s, _, _ in timings if s == 200), "503": len(refused),
            "other": sum(1 for s, _, _ in timings if s not in (200, 503)),
            "refusal_p50_ms": float(np.median(refused)) * 1e3 if refused else None,
            "refusal_max_ms": max(refused) * 1e3 if refused else None,
            "burst_s": ended - began, "back_cam_s": back_cam, "back_s": back,
            "memory": rss.summary(began, ended, after_s), "after_s": after_s}


def seconds(value: float | None, digits: int = 1) -> str:
    return "never" if value is None else f"{value:.{digits}f} s"


def report(args, killed: dict, timed: dict, burst: dict, restarted: dict) -> str:
    command = (f"`.venv/bin/python benchmarks/faults.py --seconds {args.seconds:g} --burst {args.burst} "
               f"--timeout-s {args.timeout_s} --write`")
    slow = timed["slow_s"]
    memory_rows = []
    for group, m in burst["memory"].items():
        if group == "worker count":
            continue
        near = m["after"] <= m["baseline"] * 1.1 + 10
        memory_rows.append(f"| {group} | {m['baseline']:.0f} MB | {m['peak']:.0f} MB (+{m['peak'] - m['baseline']:.0f}) "
                           f"| {m['after']:.0f} MB ({m['after'] - m['baseline']:+.0f}) | {'yes' if near else 'no'} |")
    count = burst["memory"]["worker count"]
    first_by = ", ".join(f"`{n}` {seconds(t)}" for n, t in restarted["first_by_s"].items())
    return "\n".join([
        "", f"## Faults under load ({time.strftime('%Y-%m-%d')})", "",
        (f"{command}: four clients send a steady mix to `digits` (classify, features, Grad-CAM, search, "
        "add) throughout each fault. Beside the model store runs a test archive, `slowdigits` (digits, "
        f"saliency only, `responseTimeout: {args.timeout_s}` in its model-config.yaml)."), "",
        "| fault | answers | failed | recovery | errors after recovery |", "|---|---|---|---|---|",
        (f"| SIGKILL of the `digits` worker under the mix | {killed['answers']} | {killed['failed']} "
        f"({', '.join(killed['failed_by']) or 'none'}) | {seconds(killed['recovery_s'])} | "
        f"{killed['errors_after']} of {killed['after']} |"), "",
        ("| fault | the slow requests got | worker replaced | registration answers again | "
        "mix errors meanwhile | errors after recovery |"), "|---|---|---|---|---|---|",
        (f"| {timed['slow']} integrated-gradient requests (512 steps, one batch) to `{SLOW_NAME}`, "
        f"timeout {timed['timeout_s']} s | {', '.join(map(str, timed['statuses']))} after "
        f"{min(slow):.1f}-{max(slow):.1f} s (the timeout) | {'yes' if timed['replaced'] else 'NO'} | "
        f"{seconds(timed['recovery_s'])} after the failure ({seconds(timed['recovery_from_send_s'])} after sending) | "
        f"{timed['mix_errors_during']} of {timed['mix_during']} ({timed['mix_failed_by']}) | "
        f"mix {timed['mix_errors_after']} of {timed['mix_after']}, `{SLOW_NAME}` "
        f"{timed['slow_errors_after']} of {timed['slow_after']} |"), "",
        ("| overload | sent at once | 200 | 503 (refused) | other | refusal p50 / max | burst lasted | "
        "first 200 after it: `digits-cam` / `digits` |"), "|---|---|---|---|---|---|---|---|",
        f"| Score-CAM burst on `digits-cam` | {burst['burst']} | {burst['200']} | {burst['503']} | {burst['other']} | "
        + (f"{burst['refusal_p50_ms']:.0f} / {burst['refusal_max_ms']:.0f} ms" if burst["503"] else "-")
        + f" | {burst['burst_s']:.1f} s | {seconds(burst['back_cam_s'], 2)} / {seconds(burst['back_s'], 2)} |", "",
        (f"Resident memory (RSS) during that burst, sampled every 0.5 s: baseline (median of 3 s before), "
        f"peak during, and {burst['after_s']:g} s after the last answer of the burst; workers: the sum of "
        f"{count['baseline']:.0f} worker processes."), "",
        "| process | baseline | peak during the burst | 10 s after | back near the baseline (+10% + 10 MB) |",
        "|---|---|---|---|---|", *memory_rows, "",
        ("| fault | requests failed while down | downtime (last success before to first after) | "
        "/ping | errors once back (after first success + 1 s) | acknowledged adds kept |"),
        "|---|---|---|---|---|---|",
        (f"| the whole server stopped and started again while the clients send (same ports, same run "
        f"directory) | {restarted['failed_window']} ({restarted['failed_by']}) | {seconds(restarted['downtime_s'])} "
        f"(stop {restarted['stop_s']:.1f} s, start {restarted['start_s']:.1f} s) | failing "
        f"{seconds(restarted['ping_down_s'])} after the stop began, 200 again {seconds(restarted['ping_back_s'])} "
        f"after the last success | {restarted['errors_after']} of {restarted['after']} | "
        f"{restarted['kept']} of {restarted['acked']} ({restarted['acked_mix']} by the mix, 20 before) |"), "",
        (f"First success per registration after the last one before the stop: {first_by}. "
        f"Errors before the stop: {restarted['errors_before']}. A client retries 50 ms after a failure, so "
        "the failed count is attempts during the outage (connection refused while nothing listens); "
        "requests accepted once TorchServe listens again wait in its queue until the workers are "
        "loaded. /ping (which, like every TorchServe inference route, wants the inference key) is "
        "healthy before the workers are. The clients follow the new key file, as a restarted server's "
        "clients must; a stale key is answered 400 (InvalidKeyException), not 401. A timed-out "
        "batch is answered 500 for every request in it, and requests sent while its worker restarts "
        "wait for the new worker instead of failing. \"First 200 after\" the burst is a new "
        "request sent after the burst's last answer."), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of the SIGKILL drill")
    parser.add_argument("--burst", type=int, default=300, help="Score-CAM requests sent at once")
    parser.add_argument("--timeout-s", type=int, default=2, help="response timeout of the test archive")
    parser.add_argument("--slow", type=int, default=8, help="slow requests sent at once (one batch, at most 8)")
    parser.add_argument("--write", action="store_true", help="append the rows to RELIABILITY.md")
    args = parser.parse_args()
    images = [png for _, png in importlib.import_module("tests.imaging").held_out_digits(1)]
    with tempfile.TemporaryDirectory(prefix="convscope-faults-") as tmp:
        store, run_dir = report_module.one_model_store("digits", Path(tmp)), Path(tmp) / "run"
        drills.slow_archive(store, Path(tmp) / "slow", args.timeout_s)
        server = start(store, run_dir)
        try:
            killed = kill_under_load(server, images, args.seconds)
            timed = drills.response_timeout(server, images, args.timeout_s, args.slow)
            burst = overload(server, images[0], args.burst)
            server, restarted = drills.restart_under_load(store, run_dir, server, images)
        finally:
            server.stop()
    report_module.publish(report(args, killed, timed, burst, restarted), args.write, target=report_module.RELIABILITY)


if __name__ == "__main__":
    main()
