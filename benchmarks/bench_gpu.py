"""Suite section run only where a GPU is: throughput of the built-in models and a random-weight
ResNet-50 in fp32 and bf16 (autocast) at batch 32, explanation latency per method
(``explain_speed.measure`` on the GPU), and the GPU's utilisation sampled by ``nvidia-smi``
while the throughput runs. Elsewhere the section says it was skipped."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import threading
from dataclasses import replace

import torch

from benchmarks import explain_speed
from benchmarks.bench_peers import QUICK_METHODS, explanation_rows
from benchmarks.bench_types import Log, Section, fmt, table
from benchmarks.serving_latency import STORE
from convscope.explain import METHODS
from convscope.models import load_model
from convscope.spec import load_spec

BATCH = 32


class Utilisation:
    """``nvidia-smi`` sampled every ``interval`` seconds in a thread while in the ``with`` block:
    GPU utilisation (%) and memory used (MiB)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                self.samples.append(tuple(float(v) for v in out.strip().split(",")[:2]))

    def __enter__(self) -> Utilisation:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def summary(self) -> tuple[float | None, float | None, float | None]:
        """(mean %, max %, max MiB), None where nothing was sampled."""
        if not self.samples:
            return None, None, None
        util = [u for u, _ in self.samples]
        return statistics.mean(util), max(util), max(m for _, m in self.samples)


def _models(device: torch.device):
    for name in ("efficientnet_lite0", "digits"):
        yield name, load_model(load_spec(STORE / f"{name}.toml"), device)
    yield "resnet50 (random weights)", explain_speed.model_for("resnet50", device)


def _throughput(model, device: torch.device, dtype: torch.dtype | None, repeats: int) -> float:
    x = torch.randn(BATCH, *model.input_shape, device=device)

    def step():
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            model.module(x)
    return BATCH / explain_speed.timed(step, device, repeats)


def run(quick: bool, log: Log) -> Section:
    if not torch.cuda.is_available():
        return Section("gpu", ["no GPU on this machine: skipped."])
    device = torch.device("cuda")
    repeats = 10 if quick else 50
    rows = []
    with Utilisation() as util:
        for name, model in _models(device):
            for label, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
                rate = _throughput(model, device, dtype, repeats)
                rows.append([f"`{name}`", label, str(BATCH), fmt(rate, 0)])
                log(f"gpu: {name} {label} {rate:.0f} images/s")
    mean, peak, memory = util.summary()
    methods = list(QUICK_METHODS) if quick else list(METHODS)
    cells, goals = explanation_rows(explain_speed.measure(["efficientnet_lite0", "resnet50"], [1], methods, device,
                                                      2 if quick else 3, log=log))
    lines = [f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}. "
             f"Throughput: `module(x)` under `torch.inference_mode`, batch {BATCH}, bf16 by autocast, median "
             f"of {repeats} after one warm-up, synchronised.", "",
             *table(["model", "precision", "batch", "images/s"], rows), "",
             f"GPU utilisation during the throughput runs (`nvidia-smi`, every 0.5 s): mean {fmt(mean, 0, ' %')}, "
             f"max {fmt(peak, 0, ' %')}; memory used at most {fmt(memory, 0, ' MiB')}.", "",
             "Explanation latency per method (batch 1, `explain_speed.measure` on the GPU):", "",
             *table(["model", "method", "batch", "ConvScope (ms/img)", "peer (ms/img)", "speed-up",
                     "floor ratio", "goal"], cells)]
    return Section("gpu", lines, [replace(g, row=f"GPU: {g.row}") for g in goals])
