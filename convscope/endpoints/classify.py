"""Classification (top-k classes) and feature vectors (the penultimate embedding)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..envelope import Param
from ..models import LoadedModel
from ..schemas import (
    ClassifyRequest,
    ClassifyResult,
    FeaturesRequest,
    FeaturesResult,
    Prediction,
)
from .base import Endpoint, Prepared


def embed(model: LoadedModel, inputs: torch.Tensor) -> torch.Tensor:
    """float32 [B, D] embeddings at the feature layer (spatial maps are average-pooled)."""
    return model.forward(inputs).features


class ClassifyEndpoint(Endpoint):
    name = "classify"

    def declare_params(self) -> tuple[Param, ...]:
        cap = min(self.config.max_top_k, self.model.spec.num_classes)
        return (Param("top_k", int, min(5, cap), 1, cap, cap="max_top_k"),)

    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> ClassifyRequest:
        return ClassifyRequest(image=image, **params)

    def run(self, requests: list[ClassifyRequest], inputs: torch.Tensor,
            prepared: list[Prepared]) -> list[ClassifyResult]:
        probs = self.model.forward(inputs, taps=False).logits.float().softmax(dim=1)
        k = max(r.top_k for r in requests)
        scores, classes = (t.cpu() for t in probs.topk(k, dim=1))
        labels, name = self.model.spec.labels, self.model.spec.name
        return [ClassifyResult(name, tuple(
                    Prediction(int(c), labels[int(c)], float(s))
                    for s, c in zip(scores[i, :r.top_k], classes[i, :r.top_k])))
                for i, r in enumerate(requests)]


class FeaturesEndpoint(Endpoint):
    name = "features"

    def declare_params(self) -> tuple[Param, ...]:
        return (Param("normalize", bool, True),)

    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> FeaturesRequest:
        return FeaturesRequest(image=image, **params)

    def run(self, requests: list[FeaturesRequest], inputs: torch.Tensor,
            prepared: list[Prepared]) -> list[FeaturesResult]:
        vectors = embed(self.model, inputs)
        unit = F.normalize(vectors, dim=1)
        chosen = torch.stack([unit[i] if r.normalize else vectors[i] for i, r in enumerate(requests)])
        layer, name = self.model.layers.feature.label, self.model.spec.name
        return [FeaturesResult(name, layer, tuple(row)) for row in chosen.cpu().tolist()]
