"""GPU placement check: the real TorchServe handler, given ``gpu_id`` 0 as TorchServe gives a
GPU worker, serves on cuda:0 and answers what the CPU answers; then batch-1 and batch-8 latency.

    python benchmarks/gpu_check.py [--write]

Runs where there is a GPU. It drives ``handlers/convscope_handler.py`` directly with the parts of
TorchServe's context the handler uses (model name, model_dir, gpu_id, per-item status), on
archives built by ``make store``, because TorchServe's Java frontend is not on every GPU machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402
from tests.imaging import photo_bytes, rendered_digits  # noqa: E402


class _Request:
    def __init__(self, properties: dict) -> None:
        self._properties = properties

    def get_request_properties(self) -> dict:
        return self._properties


class Context:
    """The subset of ``ts.context.Context`` that the handler reads and writes."""

    def __init__(self, model_name: str, model_dir: str, gpu_id: int | None) -> None:
        self.model_name = model_name
        self.system_properties = {"model_dir": model_dir, "gpu_id": gpu_id}
        self.model_yaml_config = {"convscope": {}}
        self.request_processor: list[_Request] = []
        self.statuses: dict[int, int] = {}

    def set_response_status(self, code: int, phrase: str, idx: int) -> None:
        self.statuses[idx] = code

    def set_response_content_type(self, idx: int, value: str) -> None:
        pass


def _handler_class():
    spec = importlib.util.spec_from_file_location("convscope_handler", REPO / "handlers" / "convscope_handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ConvScopeHandler


def serve(handler_cls, name: str, model_dir: str, gpu_id, images: list[bytes]):
    context = Context(name, model_dir, gpu_id)
    handler = handler_cls()
    handler.initialize(context)
    rows = [{"body": image} for image in images]
    context.request_processor = [_Request({"body": {"content-type": "image/jpeg"}}) for _ in rows]
    answers = [json.loads(a) for a in handler.handle(rows, context)]
    return handler, context, answers


def latency(handler, context, images: list[bytes], repeats: int = 50) -> float:
    rows = [{"body": image} for image in images]
    context.request_processor = [_Request({"body": {"content-type": "image/jpeg"}}) for _ in rows]
    for _ in range(5):
        handler.handle(rows, context)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        handler.handle(rows, context)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=REPO / "model_store")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here")
    handler_cls = _handler_class()
    images = {"efficientnet_lite0": [photo_bytes("chelsea"), photo_bytes("coffee"), b"not an image"],
              "digits": [rendered_digits(1)[3][1], rendered_digits(1)[7][1], b"not an image"]}
    lines, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for model, batch in images.items():
            model_dir = Path(tmp) / model
            zipfile.ZipFile(args.store / f"{model}.mar").extractall(model_dir)
            for name in (model, f"{model}-features"):
                gpu, gpu_ctx, on_gpu = serve(handler_cls, name, str(model_dir), 0, batch)
                cpu, cpu_ctx, on_cpu = serve(handler_cls, name, str(model_dir), None, batch)
                device = gpu.endpoint.model.device
                if device.type != "cuda":
                    failures.append(f"{name}: served on {device}")
                if gpu_ctx.statuses != {2: 400} or cpu_ctx.statuses != {2: 400}:
                    failures.append(f"{name}: per-item statuses {gpu_ctx.statuses} / {cpu_ctx.statuses}")
                if "predictions" in on_gpu[0]:
                    for g, c in zip(on_gpu[:2], on_cpu[:2]):
                        same = [p["class"] for p in g["predictions"][:1]] == [p["class"] for p in c["predictions"][:1]]
                        diff = max(abs(a["score"] - b["score"]) for a, b in zip(g["predictions"], c["predictions"]))
                        failures += [] if same and diff < 1e-3 else [f"{name}: GPU {g} vs CPU {c}"]
                    agreement = f"top-1 equal, max score diff {diff:.1e}"
                else:
                    cos = min(sum(a * b for a, b in zip(g["vector"], c["vector"])) for g, c in zip(on_gpu[:2], on_cpu[:2]))
                    failures += [] if cos > 0.9999 else [f"{name}: cosine GPU/CPU {cos}"]
                    agreement = f"cosine to CPU {cos:.6f}"
                b1 = latency(gpu, gpu_ctx, batch[:1])
                b8 = latency(gpu, gpu_ctx, (batch[:2] * 4)[:8])
                lines.append(f"| `{name}` | {device} | {agreement} | {b1:.2f} | {b8:.2f} | {b8 / 8:.2f} |")
                print(lines[-1], flush=True)
    text = (f"\n## GPU placement check ({time.strftime('%Y-%m-%d')})\n\n"
            "Command: `python benchmarks/gpu_check.py` on the lent GPU machine "
            f"({torch.cuda.get_device_name(0)}, torch {torch.__version__}, Python {platform.python_version()}). "
            "The real handler, given gpu_id 0, loads on the GPU and answers as on the CPU; one bad "
            "item per batch answers 400 alone. Latency is the handler's median over 50 calls "
            "(decode, preprocess, forward, encode), batch 1 and batch 8.\n\n"
            "| name | device | GPU vs CPU | batch 1 (ms) | batch 8 (ms) | per image at 8 (ms) |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    if failures:
        print(text + "\nFAILED:\n" + "\n".join(failures))
        raise SystemExit(1)
    publish(text, args.write)


if __name__ == "__main__":
    main()
