"""Added latency of the typed gRPC gateway over calling TorchServe's gRPC directly, and the size
and encode time of an explanation as PNG + float16 (the typed API) against a JSON float list.

    .venv/bin/python benchmarks/gateway_latency.py [--requests 400] [--write]

Starts ConvScope (TorchServe + gateway) on free loopback ports from the built model store. The
same ``digits`` classification goes (a) straight to TorchServe's ``Predictions`` and (b) through
the gateway's ``Classify`` (which makes that same upstream call and converts the answer). At
concurrency 1 the two alternate call by call; at concurrency 16 they run in alternating rounds;
the added latency is gateway minus direct, at p50 and p99. Goal: at most 1 ms added at p50.

On a small machine the end-to-end figure mixes the gateway's own cost with four processes
(client, gateway, TorchServe's frontend and worker) sharing the cores, so the script also
measures the gateway alone: the same two paths with a zero-cost upstream (an echo server that
speaks TorchServe's gRPC and answers a fixed classification) in place of TorchServe.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from convscope_client._proto import convscope_pb2 as pb  # noqa: E402
from convscope_client._proto import convscope_pb2_grpc as pb_grpc  # noqa: E402

from benchmarks.report import pct, publish  # noqa: E402
from convscope.serving import free_ports, start  # noqa: E402
from convscope_gateway._proto import inference_pb2, inference_pb2_grpc  # noqa: E402
from tests.imaging import held_out_digits, photo_bytes  # noqa: E402

GOAL_MS = 1.0


ECHO_ANSWER = json.dumps({"model": "digits", "predictions": [
    {"class": c, "label": str(c), "score": 0.1} for c in range(5)]}).encode()


class Echo(inference_pb2_grpc.InferenceAPIsServiceServicer):
    """A zero-cost TorchServe: answers every ``Predictions`` with a fixed classification."""

    async def Predictions(self, request, context):
        return inference_pb2.PredictionResponse(prediction=ECHO_ANSWER)


async def serve_echo(port: int) -> None:
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def isolated(requests: int) -> dict:
    """The gateway's own cost: the two paths with the echo server as the upstream."""
    ports = free_ports()
    echo = subprocess.Popen([sys.executable, __file__, "--echo", str(ports["grpc_inference"])])
    gateway = subprocess.Popen([sys.executable, "-m", "convscope_gateway",
                                "--listen", f"127.0.0.1:{ports['gateway_grpc']}",
                                "--http-listen", f"127.0.0.1:{ports['gateway_http']}",
                                "--upstream", f"127.0.0.1:{ports['grpc_inference']}",
                                "--model-store", str(REPO / "model_store"), "--poll-interval", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        return asyncio.run(measure(ports, "echo", requests))
    finally:
        echo.kill()
        gateway.kill()


async def measure(ports: dict, key: str, requests: int) -> dict:
    token = (("authorization", f"Bearer {key}"),)
    image = held_out_digits(1)[4][1]
    direct_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc_inference']}")
    typed_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['gateway_grpc']}")
    direct = inference_pb2_grpc.InferenceAPIsServiceStub(direct_channel)
    typed = pb_grpc.ConvScopeStub(typed_channel)
    direct_request = inference_pb2.PredictionsRequest(model_name="digits", input={"data": image, "top_k": b"5"})
    typed_request = pb.ClassifyRequest(model="digits", image=pb.Image(data=image), top_k=5)

    async def timed(call, request) -> float:
        started = time.perf_counter()
        await call(request, metadata=token, timeout=30)
        return time.perf_counter() - started

    calls = {"direct": (direct.Predictions, direct_request), "gateway": (typed.Classify, typed_request)}
    for _ in range(50):  # warm-up: connections, worker, JIT caches
        for call, request in calls.values():
            await timed(call, request)
    results: dict = {}
    serial: dict[str, list[float]] = {"direct": [], "gateway": []}
    for _ in range(requests):
        for name, (call, request) in calls.items():
            serial[name].append(await timed(call, request))
    results[1] = serial
    loaded: dict[str, list[float]] = {"direct": [], "gateway": []}
    walls: dict[str, float] = {"direct": 0.0, "gateway": 0.0}
    for _ in range(4):
        for name, (call, request) in calls.items():
            started = time.perf_counter()
            per_worker = max(1, requests // 4 // 16)
            async def worker():
                return [await timed(call, request) for _ in range(per_worker)]
            for chunk in await asyncio.gather(*(worker() for _ in range(16))):
                loaded[name].extend(chunk)
            walls[name] += time.perf_counter() - started
    results[16] = loaded
    results["throughput"] = {name: len(loaded[name]) / walls[name] for name in walls}
    await direct_channel.close()
    await typed_channel.close()
    return results


def payload_sizes(server) -> dict:
    """One real Grad-CAM of the chelsea photo; the same map encoded both ways."""
    token = (("authorization", f"Bearer {server.keys['inference']}"),)
    with grpc.insecure_channel(f"127.0.0.1:{server.ports['gateway_grpc']}") as channel:
        answer = pb_grpc.ConvScopeStub(channel).Cam(pb.CamRequest(
            model="efficientnet_lite0", image=pb.Image(data=photo_bytes("chelsea")), method=pb.CAM_METHOD_GRADCAM,
            rendering=pb.Rendering(outputs=[pb.OUTPUT_HEATMAP, pb.OUTPUT_ARRAY])), metadata=token, timeout=120)
    m = answer.explanation.map
    values = np.frombuffer(m.array_f16, dtype="<f2").reshape(m.height, m.width).astype(np.float32)
    return {"shape": (m.height, m.width), **encode_costs(values)}


def encode_costs(values: np.ndarray, repeats: int = 20) -> dict[str, tuple[int, float]]:
    """Encoding name -> (bytes, median encode ms) of one map, float32 [H, W] in [0, 1]: the typed
    gRPC message (PNG heatmap + float16 array), the same two base64'd in REST JSON, and the JSON
    float list of TorchServe's own explanations."""
    height, width = values.shape

    def png() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray((values * 255).round().astype(np.uint8)).save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    def typed_encode() -> bytes:
        return pb.ExplanationMap(width=width, height=height, heatmap_png=png(),
                                 array_f16=values.astype("<f2").tobytes()).SerializeToString()

    def json_encode() -> bytes:
        return json.dumps(values.tolist()).encode()

    def rest_encode() -> bytes:
        return json.dumps({"heatmap": base64.b64encode(png()).decode(),
                           "array": {"dtype": "float16", "shape": [height, width],
                                     "data": base64.b64encode(values.astype("<f2").tobytes()).decode()}}).encode()

    out = {}
    for name, encode in (("typed gRPC: PNG + float16 bytes", typed_encode),
                         ("REST: PNG + float16, base64 in JSON", rest_encode),
                         ("JSON float list (TorchServe's explanations)", json_encode)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            size = len(encode())
            times.append(time.perf_counter() - started)
        out[name] = (size, statistics.median(times) * 1e3)
    return out


def latency_rows(lat: dict) -> list[str]:
    rows = []
    for conc in (1, 16):
        d, g = lat[conc]["direct"], lat[conc]["gateway"]
        added50, added99 = pct(g, 50) - pct(d, 50), pct(g, 99) - pct(d, 99)
        goal = f"{'met' if added50 <= GOAL_MS else 'missed'} (<= {GOAL_MS:g} ms at p50)"
        rows.append(f"| {conc} | {pct(d, 50):.2f} / {pct(d, 99):.2f} | {pct(g, 50):.2f} / {pct(g, 99):.2f} | "
                    f"{added50:+.2f} / {added99:+.2f} | {goal} |")
    tput = lat["throughput"]
    rows.append(f"\nThroughput at concurrency 16: direct {tput['direct']:.0f} req/s, gateway {tput['gateway']:.0f} req/s "
                f"({tput['gateway'] / tput['direct']:.2f}x).\n")
    return rows


HEADER = ["| concurrency | direct p50 / p99 (ms) | through the gateway p50 / p99 (ms) | added p50 / p99 (ms) | goal |",
          "|---|---|---|---|---|"]


def report(lat: dict, alone: dict, sizes: dict, requests: int) -> str:
    size_rows = [f"| {name} | {size / 1024:.1f} KiB | {ms:.2f} ms |" for name, (size, ms) in sizes.items() if name != "shape"]
    json_size = sizes["JSON float list (TorchServe's explanations)"][0]
    typed_size = sizes["typed gRPC: PNG + float16 bytes"][0]
    return "\n".join([
        f"\n## Gateway latency and explanation payloads ({time.strftime('%Y-%m-%d')})\n",
        f"`.venv/bin/python benchmarks/gateway_latency.py --requests {requests} --write` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, grpcio {grpc.__version__}; "
        f"`digits` classification, {requests} calls per path at concurrency 1 (alternating), "
        f"{len(lat[16]['direct'])} per path at 16.\n",
        "End to end: TorchServe's `Predictions` on `digits` against the gateway's `Classify`:\n",
        *HEADER, *latency_rows(lat),
        "The gateway alone: the same two paths with a zero-cost upstream (an echo server speaking "
        "TorchServe's gRPC) in place of TorchServe:\n",
        *HEADER, *latency_rows(alone),
        f"Explanation payload: one Grad-CAM map of the chelsea photo ({sizes['shape'][1]}x{sizes['shape'][0]}), "
        "heatmap and array, median of 20 encodes:\n",
        "| encoding | size | encode time |", "|---|---|---|", *size_rows,
        f"\nThe typed answer is {json_size / typed_size:.1f}x smaller than the JSON float list.\n"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--write", action="store_true", help="append the result to BENCHMARKS.md")
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)  # run the echo upstream on this port
    args = parser.parse_args()
    if args.echo:
        asyncio.run(serve_echo(args.echo))
        return
    alone = isolated(args.requests)
    with tempfile.TemporaryDirectory(prefix="convscope-gateway-") as tmp:
        server = start(REPO / "model_store", Path(tmp) / "run")
        try:
            lat = asyncio.run(measure(server.ports, server.keys["inference"], args.requests))
            sizes = payload_sizes(server)
        finally:
            server.stop()
    publish(report(lat, alone, sizes, args.requests), args.write)


if __name__ == "__main__":
    main()
