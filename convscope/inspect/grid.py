"""Tiles to one labelled grid PNG: feature maps (viridis) and filter weights (RGB or grey).

Each tile is normalised to its own range (a channel that peaks at 0.1 is as visible as one at
10), enlarged by an integer factor with nearest-neighbour sampling (a 3x3 filter stays nine
crisp squares), and captioned above with its own label.
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..render import viridis_lut

CAPTION_PX = 14
GAP_PX = 4
BACKGROUND = (255, 255, 255)


@cache
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(11)


def unit_range(tiles: np.ndarray) -> np.ndarray:
    """float [N, ...] -> float32 [N, ...] in [0, 1], each tile scaled from its own min to max;
    a constant tile is all zeros."""
    flat = tiles.reshape(len(tiles), -1).astype(np.float32)
    low, high = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return ((flat - low) / span * (high > low)).reshape(tiles.shape)


def coloured(unit: np.ndarray) -> np.ndarray:
    """float [N, h, w] in [0, 1] -> uint8 [N, h, w, 3] through viridis."""
    return viridis_lut()[(unit * 255).round().astype(np.uint8)]


def grid_png(tiles: np.ndarray, labels: list[str], columns: int | None = None,
             tile_px: int = 64) -> bytes:
    """uint8 [N, h, w, 3] tiles, one caption each -> a PNG grid. ``columns``: default about
    sqrt(N); each tile is enlarged by the largest integer factor that fits ``tile_px``."""
    count, height, width = tiles.shape[:3]
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    factor = max(1, tile_px // max(height, width))
    caption_w = max(int(_font().getlength(label)) for label in labels) + 2
    cell_w = max(width * factor, caption_w) + GAP_PX  # a caption never runs into its neighbour
    cell_h = height * factor + CAPTION_PX + GAP_PX
    canvas = Image.new("RGB", (columns * cell_w + GAP_PX, rows * cell_h + GAP_PX), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i in range(count):
        x, y = GAP_PX + (i % columns) * cell_w, GAP_PX + (i // columns) * cell_h
        draw.text((x, y), labels[i], fill=(0, 0, 0), font=_font())
        tile = Image.fromarray(tiles[i]).resize((width * factor, height * factor), Image.Resampling.NEAREST)
        canvas.paste(tile, (x, y + CAPTION_PX))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
