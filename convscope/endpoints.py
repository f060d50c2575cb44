"""Endpoints: a batch of payloads in, one outcome per payload out.

``Endpoint.handle`` owns the flow every endpoint shares: parse each payload into its typed
request, decode and tensorise each image (the one preprocessing path), run the good items as
one batch on the model's device, and give every item its own result or its own error. A bad
item fails alone; its batch-mates are answered. Subclasses declare their parameters and
implement ``run`` for a batch of good items.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from . import metrics
from .config import EngineConfig
from .envelope import Param, Payload, parse_params, split_payload
from .errors import InternalError, ServiceError
from .models import LoadedModel, capture
from .preprocess import batch, decode_image, to_tensor
from .schemas import ClassifyRequest, ClassifyResult, FeaturesRequest, FeaturesResult, Prediction

log = logging.getLogger(__name__)

Outcome = Any  # a result dataclass with .to_dict(), or a ServiceError


class Endpoint(ABC):
    name: ClassVar[str]

    def __init__(self, model: LoadedModel, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        self.params = self.declare_params()

    def declare_params(self) -> tuple[Param, ...]:
        return ()

    @abstractmethod
    def make_request(self, image: bytes, params: dict[str, Any]) -> Any: ...

    @abstractmethod
    def run(self, requests: list[Any], inputs: torch.Tensor) -> list[Outcome]:
        """Results for ``requests``; ``inputs`` is float32 [B, C, H, W] on the model's device."""

    def parse(self, payload: Payload) -> Any:
        image, raw = split_payload(payload)
        return self.make_request(image, parse_params(raw, self.params))

    def prepare(self, request: Any) -> torch.Tensor:
        started = time.perf_counter()
        spec = self.model.spec.input
        decoded = decode_image(request.image, self.config, spec.alpha_background)
        tensor = to_tensor(decoded.image, spec)
        metrics.PREPROCESS_DURATION.labels(self.model.spec.name).observe(time.perf_counter() - started)
        return tensor

    def handle(self, payloads: list[Payload]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes: list[Outcome] = [None] * len(payloads)
        good: list[tuple[int, Any, torch.Tensor]] = []
        for index, payload in enumerate(payloads):
            try:
                request = self.parse(payload)
                good.append((index, request, self.prepare(request)))
            except ServiceError as error:
                outcomes[index] = error
        if good:
            indices, requests, tensors = zip(*good)
            for index, outcome in zip(indices, self._run_guarded(list(requests), list(tensors))):
                outcomes[index] = outcome
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    def _run_guarded(self, requests: list[Any], tensors: list[torch.Tensor]) -> list[Outcome]:
        try:
            return self.run(requests, batch(tensors, self.model.device))
        except ServiceError as error:
            return [error] * len(requests)
        except Exception:  # noqa: BLE001 - a bug must answer 500 per item, not kill the worker
            log.exception("%s/%s failed on a batch of %d", self.model.spec.name, self.name, len(requests))
            return [InternalError(f"{self.name} failed on the server; see the worker log")] * len(requests)

    def _observe(self, outcomes: list[Outcome], seconds: float) -> None:
        model, name = self.model.spec.name, self.name
        metrics.BATCH_SIZE.labels(model, name).observe(len(outcomes))
        for outcome in outcomes:
            metrics.REQUEST_DURATION.labels(model, name).observe(seconds)
            if isinstance(outcome, ServiceError):
                metrics.ERRORS.labels(model, name, outcome.type).inc()


class ClassifyEndpoint(Endpoint):
    name = "classify"

    def declare_params(self) -> tuple[Param, ...]:
        cap = min(self.config.max_top_k, self.model.spec.num_classes)
        return (Param("top_k", int, min(5, cap), 1, cap),)

    def make_request(self, image: bytes, params: dict[str, Any]) -> ClassifyRequest:
        return ClassifyRequest(image=image, **params)

    def run(self, requests: list[ClassifyRequest], inputs: torch.Tensor) -> list[ClassifyResult]:
        with torch.inference_mode():
            probs = self.model.module(inputs).float().softmax(dim=1)
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

    def make_request(self, image: bytes, params: dict[str, Any]) -> FeaturesRequest:
        return FeaturesRequest(image=image, **params)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """float32 [B, D] embeddings at the feature layer (spatial maps are average-pooled)."""
        tap = self.model.layers.feature
        with capture({"feature": tap}) as seen, torch.inference_mode():
            self.model.module(inputs)
        vectors = seen["feature"]
        if vectors.ndim == 4:
            vectors = vectors.mean(dim=(2, 3))
        return vectors.flatten(1).float()

    def run(self, requests: list[FeaturesRequest], inputs: torch.Tensor) -> list[FeaturesResult]:
        vectors = self.embed(inputs)
        unit = F.normalize(vectors, dim=1)
        chosen = torch.stack([unit[i] if r.normalize else vectors[i] for i, r in enumerate(requests)])
        layer, name = self.model.layers.feature.label, self.model.spec.name
        return [FeaturesResult(name, layer, tuple(row)) for row in chosen.cpu().tolist()]


ENDPOINTS: dict[str, type[Endpoint]] = {cls.name: cls for cls in (ClassifyEndpoint, FeaturesEndpoint)}
SUFFIXES = {"classify": "", "features": "-features"}
"""TorchServe registration name of each endpoint: ``<model><suffix>``."""


def endpoint_for(registered_name: str, model_name: str) -> str:
    """Which endpoint a TorchServe registration name serves (``digits-features`` -> features)."""
    for endpoint, suffix in SUFFIXES.items():
        if registered_name == f"{model_name}{suffix}":
            return endpoint
    raise InternalError(f"registration name {registered_name!r} matches no endpoint of {model_name!r}")


def build_endpoint(endpoint: str, model: LoadedModel, config: EngineConfig) -> Endpoint:
    return ENDPOINTS[endpoint](model, config)
