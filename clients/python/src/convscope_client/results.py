"""What the calls return: frozen dataclasses with named fields, the same for both transports.

Floats are the server's float32 values (as Python floats, or numpy float32 arrays), so a result
read over REST compares equal to the same result read over gRPC. Arrays are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class _ArrayEquality:
    """``==`` for dataclasses holding numpy arrays: arrays compare by dtype, shape and values
    (the generated ``__eq__`` would compare them element-wise and fail on truth-testing)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    return a == b


def frozen_array(values: Any, dtype: npt.DTypeLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A read-only numpy array of ``dtype`` (little-endian for raw bytes), reshaped if asked."""
    array = (np.frombuffer(values, np.dtype(dtype).newbyteorder("<")).astype(dtype)
             if isinstance(values, bytes) else np.asarray(values, dtype))
    if shape is not None:
        array = array.reshape(shape)
    array.setflags(write=False)
    return array


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
class Features(_ArrayEquality):
    model: str
    layer: str
    """The tap, e.g. ``classifier:input`` (the input of the classifier head)."""
    vector: np.ndarray
    """float32 [dim]; unit L2 norm unless the call asked for ``normalize=False``."""

    @property
    def dim(self) -> int:
        return len(self.vector)


@dataclass(frozen=True, eq=False)
class Explanation(_ArrayEquality):
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
        written = []
        for suffix, data in ((".heatmap.png", self.heatmap_png), (".overlay.png", self.overlay_png)):
            if data is not None:
                path = Path(f"{prefix}{suffix}")
                path.write_bytes(data)
                written.append(path)
        if self.array is not None:
            path = Path(f"{prefix}.npy")
            np.save(path, self.array)
            written.append(path)
        return written


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
    """Of ``classify``, ``features``, ``saliency``, ``cam``, ``neighbours``."""
    input_height: int
    input_width: int
