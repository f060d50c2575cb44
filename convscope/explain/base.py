"""The flow every explanation method shares, and the autograd helpers they use.

A method sees a batch: inputs float32 [B, C, H, W] on the model's device, one target class per
item (``targets`` int64 [B]), the options of its group and, for CAMs, the layer. It returns maps
float32 [B, H, W] at the input's resolution, still on the device; rendering happens later.

Nothing is stored on a method object: it is a stateless strategy shared by every request.
Hooks live inside ``capture``/``guided_relus`` blocks and are removed in ``finally``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..models import LoadedModel, Tap, capture


@dataclass(frozen=True)
class Job:
    """One group of items explained together: same method, options and layer."""

    model: LoadedModel
    inputs: torch.Tensor
    """float32 [B, C, H, W] on the model's device."""
    targets: torch.Tensor
    """int64 [B] on the model's device."""
    options: dict[str, Any]
    chunk_size: int
    """Most images in one forward pass: bounds memory whatever samples/steps/windows ask."""
    layer: Tap | None = None


class Method(ABC):
    """One explanation method. Subclasses are small: they declare their name, family, whether
    their maps are signed, the paper, and implement one hook."""

    name: ClassVar[str]
    family: ClassVar[str]  # "saliency" or "cam"
    signed: ClassVar[bool] = False
    default_polarity: ClassVar[str] = "positive"
    """How signed maps are shown unless the request says otherwise."""
    options: ClassVar[tuple[str, ...]] = ()
    """Names of the request parameters that apply to this method only."""

    @abstractmethod
    def explain(self, job: Job) -> torch.Tensor:
        """float32 [B, H, W] maps at the input resolution, on the model's device."""


def target_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The target class's logit per item: float [B]."""
    return logits.gather(1, targets[:, None]).squeeze(1)


def input_gradients(module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d logit_target / d input, float32 [B, C, H, W]. Items are independent (eval mode)."""
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        scores = target_scores(module(x), targets)
        (grads,) = torch.autograd.grad(scores.sum(), x)
    return grads


def chunked(fn: Callable[..., torch.Tensor], chunk: int, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn`` over slices of at most ``chunk`` rows of every tensor, concatenated."""
    total = tensors[0].shape[0]
    return torch.cat([fn(*(t[i:i + chunk] for t in tensors)) for i in range(0, total, chunk)])


def spread(per_item: int, items: int, chunk: int) -> Iterator[list[tuple[int, int, int]]]:
    """The ``items`` x ``per_item`` (item, k) pairs in order, in chunks of at most ``chunk``,
    each chunk as (item, start, stop) segments: full passes across the whole batch, where
    chunking image by image would leave a part-empty pass per image."""
    segments: list[tuple[int, int, int]] = []
    room = chunk
    for item in range(items):
        start = 0
        while start < per_item:
            take = min(room, per_item - start)
            segments.append((item, start, start + take))
            start += take
            room -= take
            if room == 0:
                yield segments
                segments, room = [], chunk
    if segments:
        yield segments


@contextmanager
def layer_recording(tap: Tap) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``tap``'s activation during the block; the hook is removed in ``finally``."""
    with capture({"layer": tap}) as seen:
        yield seen


def activations_and_gradients(job: Job, need_grads: bool = True
                              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The layer's activations A [B, K, h, w], d logit_target / dA (or None) and the logits.
    Without gradients, the model's own CAM layer comes from ``LoadedModel.forward`` (ONNX
    Runtime where the model runs on it); any other layer is recorded on the PyTorch module."""
    if not need_grads and job.layer == job.model.layers.cam:
        outputs = job.model.forward(job.inputs)
        return outputs.cam, None, outputs.logits
    with layer_recording(job.layer) as seen, torch.enable_grad():
        logits = job.model.module(job.inputs.detach().requires_grad_(need_grads))
        activations = seen["layer"]
        grads = None
        if need_grads:
            (grads,) = torch.autograd.grad(target_scores(logits, job.targets).sum(), activations)
    return activations.detach(), grads, logits.detach()


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float [B, h, w] -> float [B, H, W], bilinear (half-pixel centres)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class _GuidedGrad(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through. Placed after a ReLU,
    whose own backward masks by its positive inputs, it gives guided backpropagation's rule."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


@contextmanager
def guided_relus(module: nn.Module) -> Iterator[None]:
    """Guided backpropagation through every ``nn.ReLU`` and ``nn.ReLU6`` in ``module`` for the
    duration of the block (forward hooks wrap their outputs; removed in ``finally``)."""
    handles = []
    try:
        for layer in module.modules():
            if isinstance(layer, (nn.ReLU, nn.ReLU6)):
                handles.append(layer.register_forward_hook(lambda _m, _i, out: _GuidedGrad.apply(out)))
        yield
    finally:
        for handle in handles:
            handle.remove()
