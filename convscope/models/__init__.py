"""Spec -> ``nn.Module`` on a device, with its layers discovered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..spec import ModelSpec
from .forward import Outputs, torch_forward
from .layers import Layers, Tap, capture, discover_layers, resolve_tap
from .registry import build_architecture
from .weights import load_weights, read_state_dict

if TYPE_CHECKING:  # onnxruntime is optional: imported only for the models that ask for it
    from .onnx_runtime import OnnxSession

__all__ = ["Layers", "LoadedModel", "Outputs", "Tap", "build_architecture", "capture", "choose_device",
           "discover_layers", "load_model", "load_weights", "read_state_dict", "resolve_tap"]


@dataclass(frozen=True)
class LoadedModel:
    """A ready model: weights loaded, eval mode, on ``device``, layers resolved. Immutable and
    shared by every request; nothing about one request is ever stored on it."""

    spec: ModelSpec
    module: nn.Module
    device: torch.device
    layers: Layers
    onnx: OnnxSession | None = None
    """The ONNX Runtime twin when the spec says ``runtime =
    "onnx"``; None: PyTorch runs everything."""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.spec.input.channels, *self.spec.input.size)

    def forward(self, inputs: torch.Tensor, taps: bool = True) -> Outputs:
        """Logits (and, with ``taps``, the feature vector and CAM map) of inputs float32 [B, C, H, W]
        on this model's device, without gradients. The one place that chooses the runtime: ONNX
        Runtime when the model has a session, else the PyTorch module. Gradient methods use
        ``module`` itself."""
        if self.onnx is not None:
            return self.onnx.run(inputs, taps)
        return torch_forward(self.module, self.layers, inputs, taps)


def choose_device(gpu_id: int | str | None) -> torch.device:
    """The worker's GPU when TorchServe assigned one and CUDA works, else the CPU."""
    if gpu_id is not None and str(gpu_id).isdigit() and torch.cuda.is_available():
        return torch.device("cuda", int(gpu_id))
    return torch.device("cpu")


def load_model(spec: ModelSpec, device: torch.device | None = None,
               threads: int | None = None) -> LoadedModel:
    """The spec's model on ``device`` (default: the CPU), and for ``runtime = "onnx"`` its ONNX
    Runtime session with ``threads`` intra-op threads (default: torch's own thread count)."""
    device = device or torch.device("cpu")
    module = build_architecture(spec.arch, spec.num_classes, spec.input.channels)
    load_weights(module, spec.weights, spec.weights_sha256)
    module = module.to(device).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    shape = (spec.input.channels, *spec.input.size)
    layers = discover_layers(module, shape, spec.num_classes, spec.layers.feature, spec.layers.cam)
    session = None
    if spec.runtime == "onnx":
        from .onnx_runtime import open_onnx

        session = open_onnx(spec.onnx, spec.onnx_sha256, module, layers, shape, device,
                            threads or torch.get_num_threads())
    if device.type == "cpu":
        # The PyTorch twin in channels-last on the CPU: forward plus input gradient of
        # efficientnet_lite0 1.18x faster at 2 images, 1.35x at 32, the same gradients to 1e-3
        # of their scale (docs/performance.md). After the export: the ONNX graph is the same.
        module = module.to(memory_format=torch.channels_last)
    return LoadedModel(spec=spec, module=module, device=device, layers=layers, onnx=session)
