"""Typed requests and results. Handlers and gateways convert to and from these; nothing
below the handler sees a transport's dicts."""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassifyRequest:
    image: bytes
    top_k: int = 5


@dataclass(frozen=True)
class FeaturesRequest:
    image: bytes
    normalize: bool = True


@dataclass(frozen=True)
class Prediction:
    class_index: int
    label: str
    score: float
    """Softmax probability in [0, 1]."""

    def to_dict(self) -> dict:
        return {"class": self.class_index, "label": self.label, "score": self.score}


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    predictions: tuple[Prediction, ...]

    def to_dict(self) -> dict:
        return {"model": self.model, "predictions": [p.to_dict() for p in self.predictions]}


@dataclass(frozen=True)
class FeaturesResult:
    model: str
    layer: str
    vector: tuple[float, ...]
    """float32 values; unit L2 norm when the request asked for ``normalize``."""

    @property
    def dim(self) -> int:
        return len(self.vector)

    def to_dict(self) -> dict:
        return {"model": self.model, "layer": self.layer, "dim": self.dim, "vector": list(self.vector)}


@dataclass(frozen=True)
class NeighboursRequest:
    """One ``<m>-neighbours`` call: a search (by image or vector), an index write, or stats."""

    op: str
    image: bytes = b""
    vector: tuple[float, ...] | None = None
    """A feature vector given instead of an image (e.g. from ``<m>-features``)."""
    k: int = 10
    id: str | None = None
    label: str | None = None
    metadata: dict | None = None


@dataclass(frozen=True)
class NeighboursResult:
    model: str
    neighbours: tuple  # of convscope.index.Neighbour, nearest first

    def to_dict(self) -> dict:
        return {"model": self.model, "neighbours": [n.to_dict() for n in self.neighbours]}


@dataclass(frozen=True)
class IndexWriteResult:
    model: str
    op: str
    id: str
    count: int
    """Entries in the index after this write."""
    created: bool | None = None
    """For ``add``: True if the id was new, False if it replaced an entry (an upsert)."""

    def to_dict(self) -> dict:
        out = {"model": self.model, "op": self.op, "id": self.id, "count": self.count}
        if self.created is not None:
            out["created"] = self.created
        return out


@dataclass(frozen=True)
class IndexStatsResult:
    model: str
    stats: dict

    def to_dict(self) -> dict:
        return {"model": self.model, "op": "stats", **self.stats}


@dataclass(frozen=True)
class ExplainRequest:
    """A saliency or CAM request. ``options`` holds the method's own parameters as sorted
    (name, value) pairs, so requests that can share one batched computation compare equal."""

    image: bytes
    method: str
    target: int | None
    options: tuple[tuple[str, object], ...]
    layer: str = "auto"
    outputs: tuple[str, ...] = ("heatmap",)
    polarity: str = "positive"
    clip_low: float = 0.0
    clip_high: float = 99.5
    alpha: float = 0.5

    @property
    def group(self) -> tuple:
        return (self.method, self.options, self.layer)


@dataclass(frozen=True)
class ExplainResult:
    model: str
    method: str
    target: int
    label: str
    score: float
    """Softmax probability of ``target`` on the unperturbed image."""
    width: int
    height: int
    heatmap: bytes | None = None
    overlay: bytes | None = None
    array: bytes | None = None
    """float16 little-endian [height, width] in [0, 1]."""

    def to_dict(self) -> dict:
        out = {"model": self.model, "method": self.method, "target": self.target,
               "label": self.label, "score": self.score, "width": self.width, "height": self.height}
        if self.heatmap is not None:
            out["heatmap"] = base64.b64encode(self.heatmap).decode()
        if self.overlay is not None:
            out["overlay"] = base64.b64encode(self.overlay).decode()
        if self.array is not None:
            out["array"] = {"dtype": "float16", "shape": [self.height, self.width],
                            "data": base64.b64encode(self.array).decode()}
        return out
