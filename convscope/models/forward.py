"""One forward pass and what the endpoints read from it: logits, the feature vector and the CAM
layer's map. The PyTorch module computes them with hooks (``torch_forward``); an ONNX export of
``Tapped`` returns the same three tensors as graph outputs (``convscope.models.onnx_runtime``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import Layers, capture

OUTPUT_NAMES = ("logits", "features", "cam")
"""The graph outputs of an exported model, in ``Outputs`` order."""


@dataclass(frozen=True)
class Outputs:
    """What one forward pass gives, on the model's device."""

    logits: torch.Tensor
    """float [B, num_classes]."""
    features: torch.Tensor | None = None
    """float32 [B, D]: the feature layer's output (spatial maps average-pooled); None when the
    caller asked for logits only."""
    cam: torch.Tensor | None = None
    """float [B, C, h, w]: the CAM layer's activations; None when the caller asked for logits only."""


def tapped(module: nn.Module, layers: Layers, inputs: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, features float32 [B, D], cam activations [B, C, h, w]) of one pass of ``module``;
    the hooks live only for the pass."""
    with capture({"feature": layers.feature, "cam": layers.cam}) as seen:
        logits = module(inputs)
    features = seen["feature"]
    if features.ndim == 4:
        features = features.mean(dim=(2, 3))
    return logits, features.flatten(1).float(), seen["cam"]


def torch_forward(module: nn.Module, layers: Layers, inputs: torch.Tensor, taps: bool) -> Outputs:
    """``Outputs`` of ``module`` on ``inputs`` float32 [B, C, H, W]; without ``taps``, logits only."""
    with torch.inference_mode():
        if not taps:
            return Outputs(module(inputs))
        return Outputs(*tapped(module, layers, inputs))


class Tapped(nn.Module):
    """``module`` with the feature and CAM taps as outputs: what is exported to ONNX."""

    def __init__(self, module: nn.Module, layers: Layers) -> None:
        super().__init__()
        self.module = module
        self.layers = layers

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tapped(self.module, self.layers, inputs)
