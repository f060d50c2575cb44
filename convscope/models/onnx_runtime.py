"""The ONNX Runtime twin of a model (``runtime = "onnx"`` in its spec).

The archive exports ``Tapped`` (logits, feature vector, CAM activations) to ``model.onnx`` with a
dynamic batch axis and records its SHA-256; a worker checks the digest, then opens one
``InferenceSession``. Forward-only work (classification, features, neighbours, CAM, Score-CAM,
occlusion) runs on it; gradient methods run on the PyTorch module, which is always loaded too.

``onnxruntime`` (and ``onnx``, for the export) are imported here only, and only for models whose
spec asks for them: a torch-runtime model never needs them.

Threads: ``intra_op_num_threads`` is set explicitly to the worker's ``intra_op_threads`` (ORT's
default, one thread per core, oversubscribes a machine where TorchServe runs one process per
endpoint), ``inter_op_num_threads`` to 1 (the graph runs sequentially), and idle pool threads do
not spin, so an idle worker never burns a core its neighbours need.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from .forward import OUTPUT_NAMES, Outputs, Tapped
from .layers import Layers
from .weights import check_digest

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OPSET = 17
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
"""cuDNN's heuristic choice, not ORT's default EXHAUSTIVE benchmarking: batch sizes vary from
request to request (TorchServe's batches, explanation chunks), and EXHAUSTIVE benchmarks every
new input shape on first sight, a multi-second stall per shape and per worker."""


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise SpecError("runtime = 'onnx' needs ONNX Runtime: pip install 'convscope[onnx]' "
                        "(or 'convscope[gpu]' for CUDA)") from exc
    return onnxruntime


def export_onnx(module: nn.Module, layers: Layers, input_shape: tuple[int, int, int],
                target: str | Path | io.BytesIO) -> None:
    """Export ``module`` with its taps to ONNX: input ``input`` float32 [B, C, H, W], outputs
    ``logits`` [B, N], ``features`` float32 [B, D], ``cam`` [B, C', h, w]; B is dynamic."""
    try:
        import onnx  # noqa: F401 - the exporter needs it; say so plainly when it is missing
    except ImportError as exc:
        raise SpecError("exporting to ONNX needs the onnx package: pip install 'convscope[onnx]'") from exc
    device = next(module.parameters()).device
    example = torch.zeros((2, *input_shape), device=device)
    # A fresh wrapper is in training mode, and the exporter restores that mode on everything
    # below it afterwards: eval() first, or the shared module would be left training.
    wrapper = Tapped(module, layers).eval()
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    # The TorchScript exporter: it needs only ``onnx`` and takes a fraction of the time of
    # torch.export's (which also needs onnxscript); its deprecation notices are known.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrapper, (example,), target, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, do_constant_folding=True)


def _providers(ort: Any, device: torch.device) -> list[Any]:
    """CUDA then CPU when the worker has a GPU and ORT has CUDA; else the CPU alone."""
    if device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            options = {**CUDA_OPTIONS, "device_id": device.index or 0}
            return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]
        log.warning("the worker has %s but ONNX Runtime has no CUDA provider (install "
                    "'convscope[gpu]'): running on the CPU", device)
    return ["CPUExecutionProvider"]


class OnnxSession:
    """One ``InferenceSession`` and the device its outputs go to. Stateless between calls
    (``InferenceSession.run`` is thread-safe); shared by every request."""

    def __init__(self, model: bytes, device: torch.device, threads: int) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model, options, providers=_providers(ort, device))
        except Exception as exc:  # ORT raises its own types for a bad graph
            raise SpecError(f"ONNX Runtime cannot open the model: {exc}") from exc
        self.device = device

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def threads(self) -> int:
        return self.session.get_session_options().intra_op_num_threads

    def run(self, inputs: torch.Tensor, taps: bool = True) -> Outputs:
        """``Outputs`` for inputs float32 [B, C, H, W], as tensors on ``device``."""
        feed = {INPUT_NAME: inputs.detach().to("cpu", torch.float32).contiguous().numpy()}
        names = list(OUTPUT_NAMES) if taps else ["logits"]
        arrays = self.session.run(names, feed)
        return Outputs(*(torch.from_numpy(a).to(self.device) for a in arrays))


def open_onnx(onnx_file: Path | None, sha256: str, module: nn.Module, layers: Layers,
              input_shape: tuple[int, int, int], device: torch.device, threads: int) -> OnnxSession:
    """The session for an archived ``model.onnx`` (refused unless it has the recorded digest),
    or, for a recipe spec that names none, for an export made in memory now."""
    if onnx_file is None:
        buffer = io.BytesIO()
        export_onnx(module, layers, input_shape, buffer)
        return OnnxSession(buffer.getvalue(), device, threads)
    try:
        data = onnx_file.read_bytes()  # hashed and opened from the same bytes
    except OSError as exc:
        raise SpecError(f"ONNX file {onnx_file.name} unreadable: {exc}") from exc
    check_digest(hashlib.sha256(data).hexdigest(), sha256, onnx_file.name, "ONNX file")
    return OnnxSession(data, device, threads)
