"""The flow every endpoint shares: a batch of payloads in, one outcome per payload out.

``Endpoint.handle`` parses each payload into its typed request, decodes and tensorises each
image (the one preprocessing path), runs the good items as one batch on the model's device,
and gives every item its own result or its own error. A bad item fails alone; its batch-mates
are answered. Subclasses declare their parameters and implement ``run`` for the good items.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image

from .. import metrics
from ..config import EngineConfig
from ..envelope import Param, Payload, parse_params, split_payload
from ..errors import InternalError, ServiceError
from ..models import LoadedModel
from ..preprocess import Placement, batch, image_input

log = logging.getLogger(__name__)

Outcome = Any  # a result dataclass with .to_dict(), or a ServiceError


@dataclass(frozen=True)
class Prepared:
    """One good item: its network input and what rendering needs to align maps with it."""

    tensor: torch.Tensor
    """float32 [C, H, W] on the CPU."""
    image: Image.Image
    """The client's image, decoded to RGB with EXIF orientation applied."""
    placement: Placement


class Endpoint(ABC):
    name: ClassVar[str]

    def __init__(self, model: LoadedModel, config: EngineConfig) -> None:
        self.model = model
        self.config = config
        self.params = self.declare_params()
        metrics.WORKER_STARTS.labels(model.spec.name, self.name).inc()

    def declare_params(self) -> tuple[Param, ...]:
        return ()

    @abstractmethod
    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> Any:
        """The typed request; ``given`` names the parameters the client actually sent."""

    @abstractmethod
    def run(self, requests: list[Any], inputs: torch.Tensor, prepared: list[Prepared]) -> list[Outcome]:
        """Outcomes for ``requests``; ``inputs`` is float32 [B, C, H, W] on the model's device,
        one row per request that has an image (all of them, where ``image_required``)."""

    image_required: ClassVar[bool] = True
    draws_on_image: ClassVar[bool] = False
    """True where results are drawn on the client's image (explanation overlays) and must be
    aligned with it: the image is then decoded at full size, never reduced."""

    def parse(self, payload: Payload) -> Any:
        image, raw = split_payload(payload, self.image_required)
        return self.make_request(image, parse_params(raw, self.params), set(raw))

    def full_image(self, request: Any) -> bool:
        """Decode every pixel of this request's image (never a reduced JPEG decode)."""
        return self.draws_on_image

    def prepare(self, request: Any) -> Prepared | None:
        """The image's network input; None for a request without an image (index writes)."""
        if not request.image and not self.image_required:
            return None
        started = time.perf_counter()
        image, tensor, placement = image_input(request.image, self.model.spec.input, self.config,
                                               full_image=self.full_image(request))
        metrics.PREPROCESS_DURATION.labels(self.model.spec.name).observe(time.perf_counter() - started)
        return Prepared(tensor, image, placement)

    def handle(self, payloads: list[Payload]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes: list[Outcome] = [None] * len(payloads)
        good: list[tuple[int, Any, Prepared]] = []
        for index, payload in enumerate(payloads):
            try:
                request = self.parse(payload)
                good.append((index, request, self.prepare(request)))
            except ServiceError as error:
                outcomes[index] = error
            except Exception:  # noqa: BLE001 - a parsing bug answers 500 for this item, not its batch
                log.exception("%s/%s could not parse item %d", self.model.spec.name, self.name, index)
                outcomes[index] = InternalError(f"{self.name} could not read this request; see the worker log")
        if good:
            indices, requests, prepared = zip(*good)
            for index, outcome in zip(indices, self._run_guarded(list(requests), list(prepared))):
                outcomes[index] = outcome
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    def item_guarded(self, step, *args) -> Outcome:
        """``step(*args)`` for one item of a batch: its result, or the ServiceError it raised as
        its outcome; a bug answers 500 for this item alone, logged."""
        try:
            return step(*args)
        except ServiceError as error:
            return error
        except Exception:  # noqa: BLE001 - one item's bug answers 500 alone
            log.exception("%s/%s failed on one item", self.model.spec.name, self.name)
            return InternalError(f"{self.name} failed on the server; see the worker log")

    def _run_guarded(self, requests: list[Any], prepared: list[Prepared]) -> list[Outcome]:
        try:
            tensors = [p.tensor for p in prepared if p is not None]
            inputs = batch(tensors, self.model.device) if tensors else None
            return self.run(requests, inputs, prepared)
        except ServiceError as error:
            return [error] * len(requests)
        except Exception:  # noqa: BLE001 - a bug must answer 500 per item, not kill the worker
            log.exception("%s/%s failed on a batch of %d", self.model.spec.name, self.name, len(requests))
            return [InternalError(f"{self.name} failed on the server; see the worker log")] * len(requests)

    def _observe(self, outcomes: list[Outcome], seconds: float) -> None:
        model, name = self.model.spec.name, self.name
        metrics.BATCH_SIZE.labels(model, name).observe(len(outcomes))
        metrics.observe_gpu_memory(self.model.device)
        for outcome in outcomes:
            metrics.REQUEST_DURATION.labels(model, name).observe(seconds)
            if isinstance(outcome, ServiceError):
                metrics.ERRORS.labels(model, name, outcome.type).inc()
