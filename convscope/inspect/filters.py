"""A convolution's weights as pictures: what its filters look for.

A layer that reads the 3-channel image gets one RGB tile per filter (the weights of the three
input channels as one colour patch); any other gets one grey tile per (filter, input channel),
a row per filter. Every filter is normalised to its own range, as in the classic first-layer
pictures of AlexNet and its successors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from ..errors import BadRequest
from .grid import grid_png, unit_range


@dataclass(frozen=True)
class FilterPicture:
    mode: str
    """``rgb`` or ``grey``."""
    shown: int
    """Filters in the grid (all, unless the tile cap cut it)."""
    grid: bytes


def first_conv(module: nn.Module) -> str | None:
    """The name of the first ``nn.Conv2d`` in the module tree (the first a classifier runs)."""
    return next((name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)), None)


def conv_weight(name: str, module: nn.Module) -> np.ndarray:
    """float32 [out, in / groups, kh, kw] of a 2-D convolution; BadRequest for anything else."""
    weight = getattr(module, "weight", None)
    if not isinstance(module, nn.modules.conv._ConvNd) or weight is None or weight.ndim != 4:
        raise BadRequest(f"layer {name!r} is a {type(module).__name__}, not a 2-D convolution: "
                         "op=filters takes a Conv2d (see op=layers)")
    return weight.detach().float().cpu().numpy()


def filter_picture(weight: np.ndarray, max_tiles: int) -> FilterPicture:
    """The grid of ``weight`` float [out, in, kh, kw], at most ``max_tiles`` tiles."""
    out_channels, in_channels = weight.shape[:2]
    if in_channels == 3:
        shown = min(out_channels, max_tiles)
        unit = unit_range(weight[:shown])  # each filter over its three channels together
        tiles = (unit.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        return FilterPicture("rgb", shown, grid_png(tiles, [f"#{i}" for i in range(shown)]))
    shown = max(1, min(out_channels, max_tiles // in_channels))
    per_input = min(in_channels, max_tiles)
    unit = unit_range(weight[:shown])[:, :per_input]  # normalised per filter, across its inputs
    grey = (unit.reshape(-1, *weight.shape[2:]) * 255).round().astype(np.uint8)
    tiles = np.repeat(grey[..., None], 3, axis=3)
    labels = [f"#{f}" if c == 0 else f"in {c}" for f in range(shown) for c in range(per_input)]
    columns = per_input if per_input > 1 else None  # a row per filter; one input: a square grid
    return FilterPicture("grey", shown, grid_png(tiles, labels, columns=columns, tile_px=32))
