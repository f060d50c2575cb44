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
    method: str = "pca"
    """op=project: pca, tsne or umap."""
    subset: str = "all"
    """op=project: all (the gallery), labels (entries with one of ``labels``) or neighbours
    (the ``k`` nearest entries of the image or vector, plus it)."""
    labels: tuple[str, ...] | None = None
    seed: int = 0
    plot: bool = False


@dataclass(frozen=True)
class ProjectedPoint:
    id: str
    label: str | None
    x: float
    y: float
    query: bool = False
    """True for the request's own image (subset=neighbours); its id is ``"query"``."""

    def to_dict(self) -> dict:
        out = {"id": self.id, "label": self.label, "x": self.x, "y": self.y}
        if self.query:
            out["query"] = True
        return out


@dataclass(frozen=True)
class ProjectionResult:
    model: str
    method: str
    subset: str
    seed: int
    points: tuple[ProjectedPoint, ...]
    """In id order (the query last)."""
    version: int
    """The index version projected (changes with every write)."""
    cached: bool
    """True when the coordinates came from the cache of this index version."""
    plot: bytes | None = None
    """PNG scatter plot coloured by label, with a legend."""

    def to_dict(self) -> dict:
        out = {"model": self.model, "op": "project", "method": self.method, "subset": self.subset,
               "seed": self.seed, "count": len(self.points), "version": self.version, "cached": self.cached,
               "points": [p.to_dict() for p in self.points]}
        if self.plot is not None:
            out["plot"] = base64.b64encode(self.plot).decode()
        return out


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
            out["array"] = float16_array((self.height, self.width), self.array)
        return out


def float16_array(shape: tuple[int, ...] | list[int], data: bytes) -> dict:
    """The wire form of a float16 little-endian array (as the explanation ``array``)."""
    return {"dtype": "float16", "shape": list(shape), "data": base64.b64encode(data).decode()}


@dataclass(frozen=True)
class InspectRequest:
    """One ``<m>-inspect`` call (docs/inspect.md). ``channels`` None means the ``top`` ones."""

    op: str
    image: bytes = b""
    layer: str | None = None
    """None: the op's default layer."""
    channels: tuple[int, ...] | None = None
    top: int = 16
    outputs: tuple[str, ...] = ()
    channel: int | None = None
    k: int = 9
    patches: bool = False


@dataclass(frozen=True)
class LayersResult:
    model: str
    input: dict
    layers: tuple  # of dicts: LayerInfo.to_dict() plus "stored"
    cam_layer: str
    feature_layer: str
    first_conv: str | None
    stored_layers: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"model": self.model, "op": "layers", "input": self.input, "cam_layer": self.cam_layer,
                "feature_layer": self.feature_layer, "first_conv": self.first_conv,
                "stored_layers": list(self.stored_layers), "layers": list(self.layers)}


@dataclass(frozen=True)
class FeatureMapsResult:
    model: str
    layer: str
    shape: tuple[int, int, int]
    width: int
    height: int
    channels: tuple  # of convscope.inspect.maps.ChannelStats
    grid: bytes | None = None
    array: bytes | None = None
    """float16 [n, height, width]: raw values aligned with the client's image."""
    raw: bytes | None = None
    """float16 [n, h, w]: the layer's own maps."""

    def to_dict(self) -> dict:
        n = len(self.channels)
        out = {"model": self.model, "op": "feature_maps", "layer": self.layer, "shape": list(self.shape),
               "width": self.width, "height": self.height, "channels": [c.to_dict() for c in self.channels]}
        if self.grid is not None:
            out["grid"] = base64.b64encode(self.grid).decode()
        if self.array is not None:
            out["array"] = float16_array((n, self.height, self.width), self.array)
        if self.raw is not None:
            out["raw"] = float16_array((n, *self.shape[1:]), self.raw)
        return out


@dataclass(frozen=True)
class FiltersResult:
    model: str
    layer: str
    shape: tuple[int, ...]
    mode: str
    shown: int
    grid: bytes | None = None
    array: bytes | None = None
    """float16 [out, in, kh, kw]: every weight of the layer."""

    def to_dict(self) -> dict:
        out = {"model": self.model, "op": "filters", "layer": self.layer, "shape": list(self.shape),
               "mode": self.mode, "shown": self.shown}
        if self.grid is not None:
            out["grid"] = base64.b64encode(self.grid).decode()
        if self.array is not None:
            out["array"] = float16_array(self.shape, self.array)
        return out


@dataclass(frozen=True)
class TopExample:
    id: str
    label: str | None
    metadata: dict
    activation: float
    position: tuple[int, int]
    box: tuple[int, int, int, int]
    width: int
    height: int
    patch: bytes | None = None

    def to_dict(self) -> dict:
        out = {"id": self.id, "label": self.label, "metadata": self.metadata, "activation": self.activation,
               "position": list(self.position), "box": list(self.box), "width": self.width, "height": self.height}
        if self.patch is not None:
            out["patch"] = base64.b64encode(self.patch).decode()
        return out


@dataclass(frozen=True)
class TopExamplesResult:
    model: str
    layer: str
    channel: int
    count: int
    examples: tuple[TopExample, ...]

    def to_dict(self) -> dict:
        return {"model": self.model, "op": "top_examples", "layer": self.layer, "channel": self.channel,
                "count": self.count, "examples": [e.to_dict() for e in self.examples]}
