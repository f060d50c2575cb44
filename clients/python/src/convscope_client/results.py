"""What the calls return: frozen dataclasses with named fields, the same for both transports.

Floats are the server's float32 values (as Python floats, or numpy float32 arrays), so a result
read over REST compares equal to the same result read over gRPC. Arrays are read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._arrays import ArrayEquality, frozen_array, write_files
from .inspection import (
    ChannelStats,
    FeatureMaps,
    Filters,
    LayerInfo,
    LayerList,
    ReceptiveField,
    TopExample,
    TopExamples,
)

__all__ = ["ChannelStats", "Classification", "Explanation", "FeatureMaps", "Features", "Filters", "IndexStats",
           "IndexWrite", "LayerInfo", "LayerList", "ModelInfo", "Neighbour", "Neighbours", "Prediction",
           "ReceptiveField", "TopExample", "TopExamples", "frozen_array"]


@dataclass(frozen=True)
class Prediction:
    class_index: int
    """0-based class index."""
    label: str
    score: float
    """Softmax probability in [0, 1]."""


@dataclass(frozen=True)
class Classification:
    model: str
    predictions: tuple[Prediction, ...]
    """Highest score first."""


@dataclass(frozen=True, eq=False)
class Features(ArrayEquality):
    model: str
    layer: str
    """The tap, e.g. ``classifier:input`` (the input of the classifier head)."""
    vector: np.ndarray
    """float32 [dim]; unit L2 norm unless the call asked for ``normalize=False``."""

    @property
    def dim(self) -> int:
        return len(self.vector)


@dataclass(frozen=True, eq=False)
class Explanation(ArrayEquality):
    """A saliency or CAM map, aligned with the image sent (or its downscale to the server's
    ``max_output_side``: ``width`` x ``height`` say which). Only the outputs asked for are set."""

    model: str
    method: str
    """The method's name as in the REST API, e.g. ``gradcam``."""
    target: int
    """The class explained."""
    label: str
    score: float
    """Softmax probability of ``target`` on the unperturbed image."""
    width: int
    height: int
    heatmap_png: bytes | None
    """8-bit grey PNG of the normalised map."""
    overlay_png: bytes | None
    """RGB PNG: the viridis map blended over the image."""
    array: np.ndarray | None
    """float16 [height, width] in [0, 1]."""

    def save(self, prefix: str | Path) -> list[Path]:
        """Write ``<prefix>.heatmap.png``, ``<prefix>.overlay.png`` and ``<prefix>.npy`` for the
        outputs present; return the paths written."""
        return write_files([(Path(f"{prefix}.heatmap.png"), self.heatmap_png),
                            (Path(f"{prefix}.overlay.png"), self.overlay_png),
                            (Path(f"{prefix}.npy"), self.array)])


@dataclass(frozen=True)
class Neighbour:
    id: str
    distance: float
    """cosine metric: 1 - cosine similarity, in [0, 2]; l2: Euclidean distance."""
    label: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class Neighbours:
    model: str
    neighbours: tuple[Neighbour, ...]
    """Nearest first."""


@dataclass(frozen=True)
class IndexWrite:
    """An acknowledged (durable) add or delete."""

    model: str
    id: str
    created: bool | None
    """add: True if the id was new, False if it replaced an entry; None for a delete."""
    count: int
    """Entries in the index after the write."""


@dataclass(frozen=True)
class ProjectedPoint:
    id: str
    """The entry's id; ``"query"`` for the probe of ``subset="neighbours"``."""
    label: str | None
    x: float
    y: float
    query: bool = False


@dataclass(frozen=True)
class Projection:
    """A 2-D layout of stored feature vectors (``op=project``, docs/neighbours.md)."""

    model: str
    method: str
    """``pca``, ``tsne`` or ``umap``."""
    subset: str
    seed: int
    points: tuple[ProjectedPoint, ...]
    """In id order, the probe last."""
    version: int
    """The index version projected; it changes with every write."""
    cached: bool
    plot: bytes | None = None
    """The scatter plot PNG, when asked for."""

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the plot PNG to ``path``; the written paths (none without a plot)."""
        if self.plot is None:
            return []
        Path(path).write_bytes(self.plot)
        return [Path(path)]


@dataclass(frozen=True)
class IndexStats:
    model: str
    count: int
    dim: int
    metric: str
    """``cosine`` or ``l2``."""
    index_type: str
    """``flat``, ``hnsw`` or ``ivf``."""
    backend: str
    """``faiss`` or ``milvus``."""
    details: dict[str, Any]
    """Backend specifics: snapshot sequence, log size, IVF lists ..."""


@dataclass(frozen=True)
class ModelInfo:
    model: str
    description: str
    num_classes: int
    feature_dim: int
    endpoints: tuple[str, ...]
    """Of ``classify``, ``features``, ``saliency``, ``cam``, ``neighbours``, ``inspect``."""
    input_height: int
    input_width: int
    layers: tuple[LayerInfo, ...] = ()
    """Every inspectable layer with its receptive field (as ``inspect_layers`` lists them);
    empty for a model archived before inspect."""
    cam_layer: str = ""
    """The CAM layer, the default of ``cam`` and ``feature_maps``."""
    feature_layer: str = ""
    """The tap of ``features``, e.g. ``fc:input``."""
    first_conv: str = ""
    """The first convolution, the default of ``filters`` ("": an older archive)."""
    stored_layers: tuple[str, ...] = ()
    """Layers of the top-activation store (``top_examples``); the first is its default."""
    input_channels: int = 0
    """The network's input channels (1: grey, 3: RGB; 0: a server that does not say)."""
