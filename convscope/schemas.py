"""Typed requests and results. Handlers and gateways convert to and from these; nothing
below the handler sees a transport's dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
        data = asdict(self)
        data["vector"] = list(self.vector)
        return {"model": self.model, "layer": self.layer, "dim": self.dim, "vector": data["vector"]}
