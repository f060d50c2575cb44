"""Maps to what clients see: aligned with their image, normalised, encoded.

A method's map lives on the network input (e.g. 224x224). ``render`` crops the part of it
where the client's image landed (``Placement``), applies the polarity, clips at percentiles
and scales to [0, 1], resizes it onto the client image (or a documented downscale: the longer
side at most ``max_side``), and encodes: ``heatmap`` an 8-bit grey PNG, ``overlay`` the
viridis-coloured map alpha-blended on the client's image as an RGB PNG, ``array`` float16
little-endian bytes of the same normalised map. Work stays on the model's device until the
final uint8/float16 copy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .preprocess import Placement

OUTPUTS = ("heatmap", "overlay", "array")
POLARITIES = ("positive", "negative", "absolute")

# viridis (perceptually uniform, colour-blind safe) at 33 evenly spaced points, interpolated.
_VIRIDIS_ANCHORS = (
    (68, 1, 84), (71, 13, 96), (72, 24, 106), (72, 35, 116), (71, 45, 123), (69, 55, 129),
    (66, 64, 134), (62, 73, 137), (59, 82, 139), (55, 91, 141), (51, 99, 141), (47, 107, 142),
    (44, 114, 142), (41, 122, 142), (38, 130, 142), (35, 137, 142), (33, 145, 140), (31, 152, 139),
    (31, 160, 136), (34, 167, 133), (40, 174, 128), (50, 182, 122), (63, 188, 115), (78, 195, 107),
    (94, 201, 98), (112, 207, 87), (132, 212, 75), (152, 216, 62), (173, 220, 48), (194, 223, 35),
    (216, 226, 25), (236, 229, 27), (253, 231, 37))


@cache
def viridis_lut() -> np.ndarray:
    """uint8 [256, 3]."""
    anchors = np.asarray(_VIRIDIS_ANCHORS, dtype=np.float64)
    positions = np.linspace(0, 255, len(anchors))
    levels = np.arange(256)
    return np.stack([np.interp(levels, positions, anchors[:, c]) for c in range(3)], 1).round().astype(np.uint8)


@dataclass(frozen=True)
class RenderOptions:
    outputs: tuple[str, ...] = ("heatmap",)
    polarity: str = "positive"
    clip_low: float = 0.0
    """Percentile mapped to 0."""
    clip_high: float = 99.5
    """Percentile mapped to 1: a few extreme pixels do not wash the map out."""
    alpha: float = 0.5
    max_side: int = 1024


@dataclass(frozen=True)
class Rendered:
    width: int
    height: int
    heatmap: bytes | None = None
    overlay: bytes | None = None
    array: bytes | None = None


def apply_polarity(maps: torch.Tensor, polarity: str) -> torch.Tensor:
    if polarity == "negative":
        return (-maps).clamp(min=0)
    if polarity == "absolute":
        return maps.abs()
    return maps.clamp(min=0)


def normalise(values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Percentile ``low`` -> 0, ``high`` -> 1, clamped; a constant map is all zeros."""
    flat = values.flatten().float()
    bounds = torch.quantile(flat, torch.tensor([low / 100, high / 100], device=flat.device))
    span = bounds[1] - bounds[0]
    if float(span) <= 0:
        return torch.zeros_like(values, dtype=torch.float32)
    return ((values - bounds[0]) / span).clamp(0, 1)


def output_size(image_size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = image_size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def align(unit: torch.Tensor, placement: Placement, size: tuple[int, int]) -> torch.Tensor:
    """The input-resolution map's ``placement.target`` region onto a canvas of ``size`` (w, h)
    standing for the client image; parts of the image the network never saw stay 0."""
    x0, y0, x1, y1 = placement.target
    region = unit[y0:y1, x0:x1]
    scale_x, scale_y = size[0] / placement.image_size[0], size[1] / placement.image_size[1]
    sx0, sy0, sx1, sy1 = placement.source
    left, top = round(sx0 * scale_x), round(sy0 * scale_y)
    right, bottom = max(left + 1, round(sx1 * scale_x)), max(top + 1, round(sy1 * scale_y))
    resized = F.interpolate(region[None, None], size=(bottom - top, right - left),
                            mode="bilinear", align_corners=False)[0, 0]
    canvas = torch.zeros(size[1], size[0], device=unit.device)
    canvas[top:bottom, left:right] = resized[: size[1] - top, : size[0] - left]
    return canvas


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def render(raw: torch.Tensor, placement: Placement, image: Image.Image,
           options: RenderOptions) -> Rendered:
    """``raw`` float [H_in, W_in] on any device; ``image`` the client's decoded RGB image."""
    x0, y0, x1, y1 = placement.target
    polar = apply_polarity(raw.float(), options.polarity)
    unit = torch.zeros_like(polar)
    unit[y0:y1, x0:x1] = normalise(polar[y0:y1, x0:x1], options.clip_low, options.clip_high)
    size = output_size(image.size, options.max_side)
    aligned = align(unit, placement, size)
    grey = (aligned * 255).round().to(torch.uint8).cpu().numpy()
    heatmap = _png(grey) if "heatmap" in options.outputs else None
    overlay = None
    if "overlay" in options.outputs:
        base = np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
        blended = (1 - options.alpha) * base + options.alpha * viridis_lut()[grey].astype(np.float32)
        overlay = _png(blended.round().clip(0, 255).astype(np.uint8))
    array = aligned.to(torch.float16).cpu().numpy().astype("<f2").tobytes() if "array" in options.outputs else None
    return Rendered(size[0], size[1], heatmap, overlay, array)
