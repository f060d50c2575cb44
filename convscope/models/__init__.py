"""Spec -> ``nn.Module`` on a device, with its layers discovered."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..spec import ModelSpec
from .layers import Layers, Tap, capture, discover_layers, resolve_tap
from .registry import build_architecture
from .weights import load_weights, read_state_dict

__all__ = ["LoadedModel", "Layers", "Tap", "build_architecture", "capture", "choose_device",
           "discover_layers", "load_model", "load_weights", "read_state_dict", "resolve_tap"]


@dataclass(frozen=True)
class LoadedModel:
    """A ready model: weights loaded, eval mode, on ``device``, layers resolved. Immutable and
    shared by every request; nothing about one request is ever stored on it."""

    spec: ModelSpec
    module: nn.Module
    device: torch.device
    layers: Layers

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.spec.input.channels, *self.spec.input.size)


def choose_device(gpu_id: int | str | None) -> torch.device:
    """The worker's GPU when TorchServe assigned one and CUDA works, else the CPU."""
    if gpu_id is not None and str(gpu_id).isdigit() and torch.cuda.is_available():
        return torch.device("cuda", int(gpu_id))
    return torch.device("cpu")


def load_model(spec: ModelSpec, device: torch.device | None = None) -> LoadedModel:
    device = device or torch.device("cpu")
    module = build_architecture(spec.arch, spec.num_classes, spec.input.channels)
    load_weights(module, spec.weights, spec.weights_sha256)
    module = module.to(device).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    shape = (spec.input.channels, *spec.input.size)
    layers = discover_layers(module, shape, spec.num_classes, spec.layers.feature, spec.layers.cam)
    return LoadedModel(spec=spec, module=module, device=device, layers=layers)
