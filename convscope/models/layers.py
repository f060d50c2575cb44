"""Finding the layers that answer "how does the network represent it" and "where does it look".

* The **feature layer** is the input of the classifier head: the last ``nn.Linear`` that runs
  and produces ``num_classes`` outputs. Its input is the penultimate embedding.
* The **CAM layer** is the last conv block: the outermost module, last to finish, whose output
  is a spatial map float [B, C, H, W] with H*W > 1 (pooling, identity and dropout excluded).
  Containers finish after their children, so this picks ``layer4`` in a ResNet, ``features``
  in VGG/DenseNet/MobileNet/ConvNeXt, ``bn2`` in timm's EfficientNet.

Both are found by one forward pass of a random image with hooks that are removed in ``finally``.
A name may be given instead of "auto": ``"<module>"`` taps its output, ``"<module>:input"`` its
input.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..errors import NotFound, SpecError

_SKIPPED = ("Identity", "Dropout", "Dropout2d", "Flatten")


@dataclass(frozen=True)
class Tap:
    """Where to read a tensor: a module's output, or (``use_input``) its first input."""

    name: str
    module: nn.Module
    use_input: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}:input" if self.use_input else self.name


@dataclass(frozen=True)
class Layers:
    feature: Tap
    feature_dim: int
    cam: Tap
    cam_shape: tuple[int, int, int]
    """C, H, W of the CAM layer's map at the spec's input size."""
    cam_feeds_head: bool = False
    """True when the feature vector is exactly the global average of the CAM layer's map, i.e.
    the head is global-average-pool + linear: what classic CAM (Zhou et al.) needs."""


def resolve_tap(model: nn.Module, name: str) -> Tap:
    """``"layer4"`` or ``"fc:input"`` to a ``Tap``; ``NotFound`` lists nearby names."""
    module_name, _, suffix = name.partition(":")
    if suffix not in ("", "input"):
        raise NotFound(f"layer {name!r}: the only suffix is ':input'")
    modules = dict(model.named_modules())
    if module_name not in modules or module_name == "":
        hint = [n for n in modules if n and n.split(".")[0] == module_name.split(".")[0]][:10]
        raise NotFound(f"model has no layer {module_name!r}" + (f"; close: {hint}" if hint else ""))
    return Tap(module_name, modules[module_name], use_input=suffix == "input")


@contextmanager
def capture(taps: dict[str, Tap]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each tap's tensor during the forward passes inside the block: the module's own
    output (or input), which stays connected to the graph for gradients.

    Hooks live only inside the ``with`` and are removed in ``finally``, even when the model raises.
    """
    store: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for key, tap in taps.items():
            def hook(_module, inputs, output, key=key, use_input=tap.use_input):
                if use_input:
                    store[key] = inputs[0]
                    return None
                # Downstream gets a copy, so an in-place op after the layer (DenseNet's
                # F.relu(features, inplace=True)) cannot change what was recorded.
                store[key] = output
                return output.clone()
            handles.append(tap.module.register_forward_hook(hook))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def _trace(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, module, input shape, output shape) for every module, in the order they finish."""
    order: list[tuple[str, nn.Module, tuple, tuple]] = []
    handles = []
    try:
        for name, module in model.named_modules():
            if not name:
                continue
            def hook(mod, inputs, output, name=name):
                in_shape = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
                out_shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
                order.append((name, mod, in_shape, out_shape))
            handles.append(module.register_forward_hook(hook))
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _auto_feature(order, num_classes: int) -> Tap:
    heads = [(n, m) for n, m, _, out in order
             if isinstance(m, nn.Linear) and out and out[-1] == num_classes]
    if not heads:
        raise SpecError("no nn.Linear classifier head with num_classes outputs was found; "
                        "name the feature layer in the spec ([layers] feature = '<module>')")
    name, module = heads[-1]
    return Tap(name, module, use_input=True)


def _auto_cam(order) -> Tap:
    spatial = [(n, m) for n, m, _, out in order
               if len(out) == 4 and out[2] * out[3] > 1
               and "Pool" not in type(m).__name__ and type(m).__name__ not in _SKIPPED]
    if not spatial:
        raise SpecError("no spatial conv layer was found; name it in the spec ([layers] cam)")
    name, module = spatial[-1]
    return Tap(name, module)


def discover_layers(model: nn.Module, input_shape: tuple[int, int, int], num_classes: int,
                    feature: str = "auto", cam: str = "auto") -> Layers:
    """Resolve the feature and CAM layers of ``model`` for inputs of ``input_shape`` (C, H, W)."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    example = torch.randn((2, *input_shape), generator=generator).to(device)
    order = _trace(model, example)
    feature_tap = _auto_feature(order, num_classes) if feature == "auto" else resolve_tap(model, feature)
    cam_tap = _auto_cam(order) if cam == "auto" else resolve_tap(model, cam)
    with capture({"feature": feature_tap, "cam": cam_tap}) as seen, torch.no_grad():
        model(example)
    feature_dim = int(seen["feature"].flatten(1).shape[1]) if seen["feature"].ndim == 2 \
        else int(seen["feature"].shape[1])
    cam_map = seen["cam"]
    if cam_map.ndim != 4:
        raise SpecError(f"CAM layer {cam_tap.label} gives shape {tuple(cam_map.shape)}, not [B,C,H,W]")
    pooled, vector = cam_map.mean(dim=(2, 3)), seen["feature"].flatten(1)
    feeds_head = pooled.shape == vector.shape and torch.allclose(pooled, vector, rtol=1e-4, atol=1e-5)
    return Layers(feature_tap, feature_dim, cam_tap, tuple(int(s) for s in cam_map.shape[1:]),
                  bool(feeds_head))
