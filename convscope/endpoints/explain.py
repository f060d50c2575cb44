"""Saliency (``<m>-saliency``) and CAM (``<m>-cam``) endpoints.

A batch may mix methods, targets and options: items are grouped by (method, options, layer)
and each group is one batched computation; every item keeps its own target (default: its own
top-1 class) and gets its own answer or its own error.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import torch

from .. import metrics
from ..envelope import Param
from ..errors import BadRequest, NotFound, ServiceError
from ..explain import CAM, METHODS, SALIENCY, Job
from ..explain.saliency.lime import default_segments
from ..explain.saliency.occlusion import window_count
from ..models import resolve_tap
from ..render import OUTPUTS, POLARITIES, RenderOptions, render
from ..schemas import ExplainRequest, ExplainResult
from .base import Endpoint, Prepared

METHOD_OPTIONS = {name for method in METHODS.values() for name in method.options}
"""Parameters that belong to particular methods; any other method refuses them."""
SAMPLES = {"smoothgrad": (25, "max_samples"), "lime": (1000, "max_lime_samples")}
"""Per method that takes ``samples``: its default and the config field that caps it."""
MAX_SEGMENTS = 1000
"""Most SLIC superpixels a LIME request may ask for (the ridge solves one weight each)."""


class ExplainEndpoint(Endpoint):
    draws_on_image = True
    methods: ClassVar[tuple[str, ...]]
    default_method: ClassVar[str]

    def family_params(self) -> tuple[Param, ...]:
        return ()

    def declare_params(self) -> tuple[Param, ...]:
        classes = self.model.spec.num_classes
        return (Param("method", str, self.default_method, choices=self.methods),
                Param("target", int, None, 0, classes - 1),
                Param("output", list, ("heatmap",), choices=OUTPUTS),
                Param("polarity", str, None, choices=POLARITIES),
                Param("clip_low", float, 0.0, 0.0, 100.0),
                Param("clip_high", float, 99.5, 0.0, 100.0),
                Param("alpha", float, 0.5, 0.0, 1.0)) + self.family_params()

    def check_options(self, method: str, options: dict[str, Any]) -> None:
        """Cross-parameter rules of a method; raise ``BadRequest``."""

    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> ExplainRequest:
        method = METHODS[params["method"]]
        stray = sorted((given & METHOD_OPTIONS) - set(method.options))
        if stray:
            owners = {name: [m for m in self.methods if name in METHODS[m].options] for name in stray}
            raise BadRequest("; ".join(f"{n} does not apply to {method.name} (only to {', '.join(o) or 'none'})"
                                       for n, o in owners.items()))
        if "polarity" in given and not method.signed:
            raise BadRequest(f"polarity applies to signed methods only; {method.name} maps are not signed")
        if params["clip_low"] >= params["clip_high"]:
            raise BadRequest("clip_low must be below clip_high")
        options = {name: params[name] for name in method.options if name != "layer"}
        self.check_options(method.name, options)
        polarity = params["polarity"] or method.default_polarity
        return ExplainRequest(image=image, method=method.name, target=params["target"],
                              options=tuple(sorted(options.items())), layer=params.get("layer", "auto"),
                              outputs=params["output"], polarity=polarity, clip_low=params["clip_low"],
                              clip_high=params["clip_high"], alpha=params["alpha"])

    def _layer(self, request: ExplainRequest):
        if METHODS[request.method].family != "cam":
            return None
        if request.layer == "auto":
            return self.model.layers.cam
        try:
            return resolve_tap(self.model.module, request.layer)
        except NotFound as error:
            raise BadRequest(error.message) from error

    def _explain_group(self, members: list[int], requests, inputs, targets) -> torch.Tensor:
        first = requests[members[0]]
        index = torch.tensor(members, device=inputs.device)
        job = Job(self.model, inputs[index], targets[index], dict(first.options),
                  self.config.chunk_for(inputs.device.type), self._layer(first))
        started = time.perf_counter()
        maps = METHODS[first.method].explain(job)
        seconds = time.perf_counter() - started
        for _ in members:
            metrics.EXPLANATION_DURATION.labels(self.model.spec.name, first.method).observe(seconds)
        return maps

    def run(self, requests: list[ExplainRequest], inputs: torch.Tensor,
            prepared: list[Prepared]) -> list[Any]:
        probs = self.model.forward(inputs, taps=False).logits.float().softmax(dim=1)
        targets = torch.tensor([r.target if r.target is not None else int(probs[i].argmax())
                                for i, r in enumerate(requests)], device=inputs.device)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.group, []).append(i)
        outcomes: list[Any] = [None] * len(requests)
        for members in groups.values():
            try:
                maps = self._explain_group(members, requests, inputs, targets)
            except ServiceError as error:
                for i in members:
                    outcomes[i] = error
                continue
            for i, raw in zip(members, maps):
                outcomes[i] = self._result(requests[i], prepared[i], raw, int(targets[i]), float(probs[i, targets[i]]))
        return outcomes

    def _result(self, request: ExplainRequest, prepared: Prepared, raw: torch.Tensor,
                target: int, score: float) -> ExplainResult:
        options = RenderOptions(request.outputs, request.polarity, request.clip_low,
                                request.clip_high, request.alpha, self.config.max_output_side)
        out = render(raw, prepared.placement, prepared.image, options)
        return ExplainResult(self.model.spec.name, request.method, target, self.model.spec.labels[target],
                             score, out.width, out.height, out.heatmap, out.overlay, out.array)


class SaliencyEndpoint(ExplainEndpoint):
    name = "saliency"
    methods = SALIENCY
    default_method = "gradient"

    def family_params(self) -> tuple[Param, ...]:
        c = self.config
        side = min(self.model.spec.input.size)
        window = max(1, side // 8)
        # samples: 25 for smoothgrad, 1000 for lime when not sent; each method's own cap is
        # checked in check_options (the larger one bounds the parse).
        return (Param("samples", int, None, 1, max(c.max_samples, c.max_lime_samples),
                      cap="max_samples (smoothgrad), max_lime_samples (lime)"),
                Param("noise", float, 0.15, 0.0, 1.0),
                Param("seed", int, 0, 0, 2**31 - 1),
                Param("steps", int, 50, 1, c.max_steps, cap="max_steps"),
                Param("baseline", str, "black", choices=("black", "blur", "uniform")),
                Param("window", int, window, 1, side),
                Param("stride", int, None, 1, side),
                Param("fill", float, None, 0.0, 1.0),
                Param("segments", int, default_segments(self.model.spec.input.size), 2,
                      min(MAX_SEGMENTS, self.model.spec.input.size[0] * self.model.spec.input.size[1])),
                Param("num_features", int, None, 1, MAX_SEGMENTS),
                Param("positive_only", bool, False))

    def check_options(self, method: str, options: dict[str, Any]) -> None:
        if method in SAMPLES:
            self._check_samples(method, options)
        if method != "occlusion":
            return
        window = options["window"]
        stride = options["stride"] = options["stride"] or max(1, window // 2)
        if stride > window:
            raise BadRequest(f"stride ({stride}) cannot exceed window ({window}): pixels would be skipped")
        count = window_count(self.model.spec.input.size, window, stride)
        if count > self.config.max_occlusion_windows:
            raise BadRequest(f"window {window} with stride {stride} gives {count} positions; the server "
                             f"cap max_occlusion_windows is {self.config.max_occlusion_windows}")

    def _check_samples(self, method: str, options: dict[str, Any]) -> None:
        default, cap = SAMPLES[method]
        limit = getattr(self.config, cap)
        if options["samples"] is None:
            options["samples"] = default
        samples = options["samples"]
        if samples > limit:
            raise BadRequest(f"samples must be between 1 and {limit} for {method} (server cap {cap}), got {samples}")


class CamEndpoint(ExplainEndpoint):
    name = "cam"
    methods = CAM
    default_method = "gradcam"

    def family_params(self) -> tuple[Param, ...]:
        return (Param("layer", str, "auto", choices=()),)
