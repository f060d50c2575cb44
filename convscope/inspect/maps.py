"""A layer's activations for an image: which channels, their statistics, the maps aligned.

``activations`` records one or more layers in one forward pass of the PyTorch module (hooks
scoped to the call). ``summarise`` gives each channel's maximum and where it is: the quantity the
top-activation store keeps for every gallery image and ``op=feature_maps`` reports, computed the
same way in both places, so the two agree to float16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import BadRequest
from ..explain.base import upsample
from ..models import LoadedModel, Tap, capture
from ..preprocess import Placement
from ..render import align, output_size
from .grid import coloured, grid_png, unit_range


def activations(model: LoadedModel, taps: dict[str, Tap], inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """{key: float32 [B, C, h, w]} of ``taps`` for inputs float32 [B, C_in, H, W] on the model's
    device; one pass of the PyTorch module (the ONNX graph exposes only the CAM layer)."""
    with capture(taps) as seen, torch.inference_mode():
        model.module(inputs)
    out = {}
    for key in taps:
        tensor = seen[key]
        if tensor.ndim != 4:
            raise BadRequest(f"layer {taps[key].label} gives shape {list(tensor.shape[1:])}, not a "
                             "spatial map [C, H, W]: pick a layer from op=layers")
        out[key] = tensor.float().contiguous()
    return out


def summarise(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float [B, C, h, w] -> (maxima float32 [B, C], flat argmax int64 [B, C]: y * w + x, the
    first position in row-major order on ties)."""
    values, positions = maps.flatten(2).max(dim=2)
    return values.float(), positions


def choose_channels(maps: torch.Tensor, channels: tuple[int, ...] | None, top: int) -> list[int]:
    """``channels`` as given (checked against C), or the ``top`` channels of largest mean
    activation, largest first (ties: lower channel first). ``maps`` float [C, h, w]."""
    count = maps.shape[0]
    if channels is not None:
        bad = [c for c in channels if not 0 <= c < count]
        if bad:
            raise BadRequest(f"channel(s) {bad[:5]} out of range: this layer has {count} channels (0-{count - 1})")
        return list(channels)
    means = maps.mean(dim=(1, 2)).cpu().numpy()
    return np.argsort(-means, kind="stable")[:min(top, count)].tolist()


@dataclass(frozen=True)
class ChannelStats:
    channel: int
    mean: float
    max: float
    argmax: tuple[int, int]
    """(y, x) in the layer's own map."""

    def to_dict(self) -> dict:
        return {"channel": self.channel, "mean": self.mean, "max": self.max, "argmax": list(self.argmax)}


def channel_stats(maps: torch.Tensor, chosen: list[int]) -> tuple[ChannelStats, ...]:
    """Statistics of ``chosen`` channels of one image's maps float [C, h, w]."""
    width = maps.shape[2]
    picked = maps[chosen]
    means = picked.mean(dim=(1, 2)).tolist()
    maxima, positions = summarise(picked[None])
    return tuple(ChannelStats(c, m, v, divmod(int(p), width))
                 for c, m, v, p in zip(chosen, means, maxima[0].tolist(), positions[0].tolist()))


def aligned_maps(picked: torch.Tensor, input_size: tuple[int, int], placement: Placement,
                 image_size: tuple[int, int], max_side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """float [n, h, w] raw maps -> float32 [n, height, width] on the client's image (or its
    downscale to ``max_side``), exactly as CAM maps are aligned: upsampled bilinearly to the
    network input, then the placed region resized onto the image. Values stay raw."""
    size = output_size(image_size, max_side)
    upsampled = upsample(picked.float(), input_size)
    return torch.stack([align(m, placement, size) for m in upsampled]), size


def feature_grid(picked: torch.Tensor, stats: tuple[ChannelStats, ...]) -> bytes:
    """A labelled PNG grid of raw maps float [n, h, w], each tile in its own range."""
    tiles = coloured(unit_range(picked.cpu().numpy()))
    return grid_png(tiles, [f"#{s.channel} max {s.max:.3g}" for s in stats])


def float16_bytes(values: torch.Tensor | np.ndarray) -> bytes:
    """Little-endian float16 bytes of ``values`` (row-major)."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    return np.ascontiguousarray(array, dtype="<f2").tobytes()
