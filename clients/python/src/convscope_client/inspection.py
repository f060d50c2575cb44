"""What the inspect calls return (docs/inspect.md): the layers with their receptive fields, one
layer's feature maps, a convolution's filters, and the gallery images that most excite a
channel. Frozen dataclasses, equal whichever transport answered; maps and weights are read-only
numpy float16 arrays, as an ``Explanation``'s map is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import ArrayEquality, write_files


@dataclass(frozen=True)
class ReceptiveField:
    """Where a layer's units look, in pixels of the network input, per axis ``(y, x)``."""

    size: tuple[int, int]
    """Input pixels one unit sees (padding included, so a unit near the border sees some)."""
    jump: tuple[int, int]
    """Input pixels between two neighbouring units (the product of the strides)."""
    start: tuple[float, float]
    """The centre of unit (0, 0), pixel ``i`` having its centre at ``i``."""
    is_global: bool
    """Every unit sees the whole input (REST's ``global``); ``size`` is then the input size."""

    def window(self, y: int, x: int) -> tuple[float, float, float, float]:
        """``(top, left, bottom, right)``, inclusive, of the input pixels unit ``(y, x)`` sees:
        ``start + (y, x) * jump +- (size - 1) / 2``; may reach past the input (padding)."""
        cy, cx = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        hy, hx = (self.size[0] - 1) / 2, (self.size[1] - 1) / 2
        return cy - hy, cx - hx, cy + hy, cx + hx


@dataclass(frozen=True)
class LayerInfo:
    name: str
    """The module name, the ``layer`` of ``feature_maps``, ``filters`` and ``top_examples``."""
    type: str
    """The module's class, e.g. ``Conv2d``."""
    shape: tuple[int, ...]
    """Its output for one image at the input size: ``(C, H, W)``."""
    receptive_field: ReceptiveField | None
    """None behind an operation whose geometry cannot be derived (``LayerList.note`` says why)."""
    stored: bool
    """The top-activation store holds it."""


@dataclass(frozen=True)
class LayerList:
    model: str
    input_channels: int
    input_height: int
    """Pixels of the network input: what receptive fields are measured in."""
    input_width: int
    cam_layer: str
    """The default layer of ``feature_maps``."""
    feature_layer: str
    first_conv: str
    """The default layer of ``filters``."""
    stored_layers: tuple[str, ...]
    """Layers ``top_examples`` can read; the first is its default."""
    layers: tuple[LayerInfo, ...]
    """In the order the forward pass finishes them."""
    note: str | None
    """Why some receptive field is None; None when every layer has one."""

    def layer(self, name: str) -> LayerInfo:
        """The layer called ``name`` (``KeyError`` if none is)."""
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(name)


@dataclass(frozen=True)
class ChannelStats:
    """One shown channel, measured on the layer's own map."""

    channel: int
    mean: float
    max: float
    argmax: tuple[int, int]
    """``(y, x)`` of the maximum in the layer's map (the first in row-major order on ties)."""


@dataclass(frozen=True, eq=False)
class FeatureMaps(ArrayEquality):
    """A layer's activations for one image, for the chosen channels. Only the outputs asked
    for are set."""

    model: str
    layer: str
    shape: tuple[int, ...]
    """The layer's output for this image: ``(C, h, w)``."""
    width: int
    """Pixels of ``array``: the image's, or its downscale to the server's ``max_output_side``."""
    height: int
    channels: tuple[ChannelStats, ...]
    """In the order of the grid and of the arrays' first axis (``top``: largest mean first)."""
    grid_png: bytes | None
    """RGB PNG, one viridis tile per channel, each normalised to its own range."""
    array: np.ndarray | None
    """float16 ``[n, height, width]``: raw activations aligned with the image (not normalised)."""
    raw: np.ndarray | None
    """float16 ``[n, h, w]``: the maps at the layer's own resolution."""

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``grid.png``, ``array.npy`` and ``raw.npy`` (those present) into ``directory``."""
        folder = Path(directory)
        return write_files([(folder / "grid.png", self.grid_png), (folder / "array.npy", self.array),
                            (folder / "raw.npy", self.raw)])


@dataclass(frozen=True, eq=False)
class Filters(ArrayEquality):
    """A convolution's weights. Only the outputs asked for are set."""

    model: str
    layer: str
    shape: tuple[int, ...]
    """The weight's shape: ``(out, in, kh, kw)``."""
    mode: str
    """``rgb`` (a colour tile per filter) or ``grey`` (a tile per filter and input channel)."""
    shown: int
    """Filters in the grid (the server caps its tiles); ``array`` always holds every weight."""
    grid_png: bytes | None
    array: np.ndarray | None
    """float16 ``[out, in, kh, kw]``."""

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``grid.png`` and ``array.npy`` (those present) into ``directory``."""
        folder = Path(directory)
        return write_files([(folder / "grid.png", self.grid_png), (folder / "array.npy", self.array)])


@dataclass(frozen=True)
class TopExample:
    id: str
    label: str | None
    metadata: dict[str, Any]
    activation: float
    """The channel's largest value in the image (stored as float16)."""
    position: tuple[int, int]
    """``(y, x)`` of that value in the layer's map."""
    box: tuple[int, int, int, int]
    """``(x0, y0, x1, y1)``, x1 and y1 exclusive: the receptive field of ``position`` in the
    original image's pixels, clipped to it."""
    width: int
    """The original image's size."""
    height: int
    patch_png: bytes | None
    """``box`` cut from the stored copy of the image (asked for with ``patches=True``)."""


@dataclass(frozen=True)
class TopExamples:
    model: str
    layer: str
    channel: int
    count: int
    """Entries in the top-activation store."""
    examples: tuple[TopExample, ...]
    """The largest activation first."""

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``patch-<rank>.png`` (rank from 1) into ``directory`` for each example with a patch."""
        folder = Path(directory)
        return write_files([(folder / f"patch-{rank}.png", e.patch_png) for rank, e in enumerate(self.examples, 1)])
