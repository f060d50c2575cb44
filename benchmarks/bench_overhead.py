"""Suite section: the service's overhead over the engine, at concurrency 1 and under load.

Latency: the endpoint's handler in this process (``serving_latency.in_process``: decode,
preprocess, forward, answer; one request at a time, the worker's threads) against the same
request end to end over REST (TorchServe's ``/predictions``) and gRPC (the typed gateway) at
concurrency 1 (``loadgen.closed_loop``). REST is called by ``loadgen.LeanRest`` (a wrk-like
caller: the service, not a client library), gRPC by ConvScope's ``AsyncClient`` (a thin layer
over grpc.aio); ConvScope's REST ``AsyncClient`` (httpx) is measured beside them, so the client
library's own cost is shown, not hidden. Overhead = end to end minus in-process, at p50 and p99.
Goal (issue 9): at most 3 ms at p50.

Throughput: ``handler.handle`` with a batch of B payloads in this process (B = the
registration's ``batch_size``) against the service under closed-loop concurrency 2B for a fixed
time (its workers batching up to B). Goal: at least 0.85x. Client, frontend, gateway and worker
share this machine's cores, as in every end-to-end figure here.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path

from benchmarks.bench_types import Goal, Log, Section, fmt, table
from benchmarks.loadgen import LeanRest, client_for, closed_loop
from benchmarks.serving_latency import IMAGES, STORE, in_process, percentiles
from convscope.serving import start
from convscope.spec import load_spec

LATENCY_GOAL_MS = 3.0
THROUGHPUT_GOAL = 0.85
ENDPOINTS = ("classify", "features")
PROTOCOLS = ("rest", "grpc")
PROTOCOL_NAMES = {"rest": "REST", "grpc": "gRPC"}
CALLERS = ("rest", "grpc", "rest-client")
"""How each protocol is called: REST by LeanRest, gRPC by AsyncClient; "rest-client" is REST
through ConvScope's AsyncClient (latency rows only, the client library's own cost)."""


def settings(quick: bool) -> dict:
    if quick:
        return {"count": 30, "seconds": 2.0, "batches": 4, "load_seconds": 3.0}
    return {"count": 200, "seconds": 15.0, "batches": 20, "load_seconds": 20.0}


def _caller(server, name: str):
    if name == "rest":
        return LeanRest(server.url("inference"), server.keys["inference"])
    return client_for(server, name.removesuffix("-client"))


async def _service(server, plan: list[tuple[str, str, int, float]]) -> dict:
    """Tallies of ``(model, endpoint, concurrency, seconds)`` per caller, each after a 1 s
    warm-up at the same concurrency; no deadline (a slow answer still counts in the figures)."""
    out = {}
    for protocol in CALLERS:
        client = _caller(server, protocol)
        try:
            for model, endpoint, concurrency, seconds in plan:
                if protocol == "rest-client" and concurrency != 1:
                    continue
                images = [IMAGES[model]]
                await closed_loop(client, endpoint, model, images, concurrency, 1.0, deadline=120)
                out[(protocol, model, endpoint, concurrency)] = await closed_loop(
                    client, endpoint, model, images, concurrency, seconds, deadline=120)
        finally:
            await client.close()
    return out


def batch_size(model: str, endpoint: str) -> int:
    return load_spec(STORE / f"{model}.toml").serving_for(endpoint).batch_size


def run(quick: bool, log: Log) -> Section:
    s = settings(quick)
    local, loaded_local = {}, {}
    for model in IMAGES:
        for endpoint in ENDPOINTS:
            local[(model, endpoint)] = percentiles(in_process(model, endpoint, s["count"]))
            log(f"overhead: in-process {model} {endpoint} p50 {local[(model, endpoint)][0]:.2f} ms")
        b = batch_size(model, "classify")
        times = in_process(model, "classify", s["batches"], batch=b, warmup=2)
        loaded_local[model] = b / statistics.median(times)
        log(f"overhead: in-process {model} classify batch {b}: {loaded_local[model]:.1f} images/s")
    plan = [(m, e, 1, s["seconds"]) for m in IMAGES for e in ENDPOINTS]
    plan += [(m, "classify", 2 * batch_size(m, "classify"), s["load_seconds"]) for m in IMAGES]
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as tmp:
        server = start(STORE, Path(tmp) / "run", index_root=Path(tmp) / "index")
        try:
            tallies = asyncio.run(_service(server, plan))
        finally:
            server.stop()
    return report(local, loaded_local, tallies, s)


def _latency(local: dict, tallies: dict) -> tuple[list[list[str]], list[Goal]]:
    rows, goals = [], []
    for (model, endpoint), (p50, p99) in local.items():
        for protocol in PROTOCOLS:
            tally = tallies[(protocol, model, endpoint, 1)]
            e50, e99 = percentiles(tally.latencies) if tally.answered else (float("nan"),) * 2
            name = PROTOCOL_NAMES[protocol]
            library = "-"
            if protocol == "rest":
                lib = tallies[("rest-client", model, endpoint, 1)]
                library = f"{fmt(percentiles(lib.latencies)[0])} ({lib.failed} failed)" if lib.answered else "0 answers"
            rows.append([f"`{model}`", endpoint, name, fmt(p50), fmt(p99), fmt(e50), fmt(e99),
                         fmt(e50 - p50), fmt(e99 - p99), f"{tally.answered} / {tally.failed}", library])
            over = e50 - p50 if tally.answered else float("inf")
            goals.append(Goal(f"{name} overhead p50, {model} {endpoint}", f"<= {LATENCY_GOAL_MS:g} ms",
                              f"{over:.2f} ms" if tally.answered else "0 answers", over <= LATENCY_GOAL_MS))
    return rows, goals


def _throughput(loaded_local: dict, tallies: dict) -> tuple[list[list[str]], list[Goal]]:
    rows, goals = [], []
    for model, local_rate in loaded_local.items():
        b = batch_size(model, "classify")
        for protocol in PROTOCOLS:
            tally = tallies[(protocol, model, "classify", 2 * b)]
            ratio = tally.throughput / local_rate if local_rate else 0.0
            name = PROTOCOL_NAMES[protocol]
            p50 = percentiles(tally.latencies)[0] if tally.answered else None
            rows.append([f"`{model}`", str(b), fmt(local_rate, 1), name, str(2 * b), fmt(tally.throughput, 1),
                         fmt(p50, 1), f"{tally.answered} / {tally.failed}", f"{ratio:.2f}x"])
            goals.append(Goal(f"{name} loaded throughput, {model} classify (batch {b})",
                              f">= {THROUGHPUT_GOAL:g}x in-process", f"{ratio:.2f}x", ratio >= THROUGHPUT_GOAL))
    return rows, goals


def report(local: dict, loaded_local: dict, tallies: dict, s: dict) -> Section:
    lat_rows, lat_goals = _latency(local, tallies)
    tput_rows, tput_goals = _throughput(loaded_local, tallies)
    lines = [
        f"Concurrency 1, batch 1: the handler in this process ({s['count']} calls after 10 warm-up, "
        f"the worker's threads) against the same request end to end for {s['seconds']:g} s per row "
        "after 1 s of warm-up; REST = TorchServe's `/predictions` called by `loadgen.LeanRest` (one keep-alive "
        "connection, the image as the raw body, as wrk would: the service without a client library), gRPC = "
        "the typed gateway called by ConvScope's `AsyncClient` (grpc.aio). Last column: the same REST call "
        "through ConvScope's `AsyncClient` (httpx), the client library's own cost included. Images: "
        "scikit-image's chelsea (JPEG) for efficientnet_lite0, a typeset digit for digits.",
        "",
        *table(["model", "endpoint", "protocol", "in-process p50 (ms)", "in-process p99 (ms)",
                "end-to-end p50 (ms)", "end-to-end p99 (ms)", "overhead p50 (ms)", "overhead p99 (ms)",
                "answered / failed", "REST via ConvScope's AsyncClient p50 (ms)"], lat_rows),
        "",
        f"Loaded: `handler.handle` with B payloads in this process ({s['batches']} calls, median) against "
        f"the service under closed-loop concurrency 2B for {s['load_seconds']:g} s (classification; REST by "
        "`LeanRest`, gRPC by `AsyncClient`, as above).",
        "",
        *table(["model", "batch B", "in-process (images/s)", "protocol", "concurrency",
                "service (images/s)", "service p50 (ms)", "answered / failed", "service / in-process"],
               tput_rows),
    ]
    return Section("overhead", lines, lat_goals + tput_goals)
