"""What the network learned (``<m>-inspect``): layers and receptive fields, an image's feature
maps, a convolution's filters, and the gallery images that most excite a channel.

One request is one operation (``op``, default ``layers``; docs/inspect.md). The batch's images
(``feature_maps`` only) run in one forward pass that records every layer the batch asks for;
``top_examples`` reads the top-activation store that ``<m>-neighbours`` writes (another
process: the reader follows its committed writes). Each item still fails alone.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import torch

from .. import metrics
from ..config import EngineConfig
from ..envelope import Param, Payload, parse_params, split_payload
from ..errors import BadRequest, NotFound
from ..index.activations import ActivationReader
from ..inspect import maps
from ..inspect.examples import crop_patch, layer_rows, patch_box, stored_layers
from ..inspect.filters import conv_weight, filter_picture, first_conv
from ..inspect.receptive import trace_layers
from ..models import LoadedModel, resolve_tap
from ..render import output_size
from ..schemas import (FeatureMapsResult, FiltersResult, InspectRequest, LayersResult, TopExample,
                       TopExamplesResult)
from .base import Endpoint, Outcome, Prepared

OPS = ("layers", "feature_maps", "filters", "top_examples")
APPLIES = {"layers": set(), "feature_maps": {"layer", "channels", "top", "output"},
           "filters": {"layer", "output"}, "top_examples": {"layer", "channel", "k", "patches"}}
OUTPUTS = {"feature_maps": ("grid", "array", "raw"), "filters": ("grid", "array")}
MAX_PATCH_BYTES = 8 << 20
"""``patches=true`` of top_examples: at most this many PNG bytes in one answer (TorchServe's
response cap is 20 MB; a deep layer's patch is the whole image)."""
MAX_MAP_VALUES = 6_000_000
"""``output=array`` of feature_maps: at most this many float16 values (12 MB) in one answer."""
BUILD_HINT = ("build it with the gallery: `make store` for the built-in models, or "
              "`convscope-index ingest --spec <spec> --index <index root>/<model> --folder <images>` "
              "(docs/inspect.md)")


class InspectEndpoint(Endpoint):
    name = "inspect"
    image_required = False
    draws_on_image = True  # feature maps are aligned with the client's image, as CAM maps are

    def __init__(self, model: LoadedModel, config: EngineConfig, store_path: Path | None = None) -> None:
        self.layers = trace_layers(model.module, (model.spec.input.channels, *model.spec.input.size))
        self.by_name = {layer.name: layer for layer in self.layers}
        self.stored = stored_layers(model, self.layers)
        self.first_conv = first_conv(model.module)
        self.modules = dict(model.module.named_modules())  # by name, once: not per request
        self.store_path, self._reader = store_path, None
        super().__init__(model, config)

    def declare_params(self) -> tuple[Param, ...]:
        c = self.config
        return (Param("op", str, "layers", choices=OPS), Param("layer", str, None, high=200),
                Param("channels", str, "top", high=4000),
                Param("top", int, min(16, c.max_feature_channels), 1, c.max_feature_channels, cap="max_feature_channels"),
                Param("output", list, ("grid",), choices=("grid", "array", "raw")),
                Param("channel", int, None, 0, 1 << 20), Param("patches", bool, False),
                Param("k", int, min(9, c.max_top_examples), 1, c.max_top_examples, cap="max_top_examples"))

    def parse(self, payload: Payload) -> InspectRequest:
        image, raw = split_payload(payload, self.image_required)
        channels = raw.get("channels")
        if isinstance(channels, list | int) and not isinstance(channels, bool):  # JSON [3, 17] or 3: as "3,17"
            items = channels if isinstance(channels, list) else [channels]
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in items):
                raise BadRequest("channels must be \"top\" or a list of channel numbers such as [3, 17, 40]")
            raw = {**raw, "channels": ",".join(str(c) for c in items)}
        return self.make_request(image, parse_params(raw, self.params), set(raw))

    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> InspectRequest:
        op = params["op"]
        extra = sorted(given - APPLIES[op] - {"op"})
        if extra:
            raise BadRequest(f"parameter(s) {extra} do not apply to op={op}, which takes {sorted(APPLIES[op]) or 'nothing more'}")
        if (op == "feature_maps") != bool(image):
            raise BadRequest("op=feature_maps needs an image" if op == "feature_maps" else f"op={op} takes no image")
        outputs = params["output"] if op in OUTPUTS else ()
        bad = [o for o in outputs if o not in OUTPUTS.get(op, ())]
        if bad:
            raise BadRequest(f"output {bad} does not apply to op={op}; it gives {', '.join(OUTPUTS[op])}")
        if op == "top_examples" and params["channel"] is None:
            raise BadRequest("op=top_examples needs a channel (see op=layers for each layer's channel count)")
        channels = _channel_list(params["channels"], self.config.max_feature_channels)
        request = InspectRequest(op=op, image=image, layer=params["layer"], channels=channels, top=params["top"],
                                 outputs=outputs, channel=params["channel"], k=params["k"], patches=params["patches"])
        self._check_layer(request)
        return request

    def _check_layer(self, request: InspectRequest) -> None:
        if request.op == "top_examples":
            name = request.layer or next(iter(self.stored), None)
            if name not in self.stored:
                raise BadRequest(f"layer {name!r} is not in {self.model.spec.name}'s top-activation store; "
                                 f"stored layers: {list(self.stored) or 'none ([inspect] layers is empty)'}")
            if request.channel >= self.stored[name][0]:
                raise BadRequest(f"channel {request.channel} out of range: layer {name} has "
                                 f"{self.stored[name][0]} channels (0-{self.stored[name][0] - 1})")
        elif request.layer is not None and request.op != "layers" and request.layer not in self.by_name:
            if request.op == "filters" and request.layer in self.modules:
                return  # a conv whose output is not a spatial map of its own is still a conv
            raise BadRequest(f"unknown layer {request.layer!r}; valid layers: {', '.join(self.by_name)}")

    def run(self, requests: list[InspectRequest], inputs: torch.Tensor | None,
            prepared: list[Prepared | None]) -> list[Outcome]:
        started = time.perf_counter()
        names = {r.layer or self.model.layers.cam.name for r in requests if r.op == "feature_maps"}
        recorded = maps.activations(self.model, {n: resolve_tap(self.model.module, n) for n in names},
                                    inputs) if inputs is not None else {}
        forward = time.perf_counter() - started  # shared by the batch's feature_maps items
        image_rows = iter(range(len(requests)))  # row of inputs of each item with an image, in order
        outcomes: list[Outcome] = []
        for request, item in zip(requests, prepared):
            started = time.perf_counter()
            row = next(image_rows) if item is not None else None
            outcomes.append(self.item_guarded(self._answer, request, item, recorded, row))
            seconds = time.perf_counter() - started + (forward if request.op == "feature_maps" else 0.0)
            metrics.INSPECT_DURATION.labels(self.model.spec.name, request.op).observe(seconds)
        return outcomes

    def _answer(self, request: InspectRequest, item: Prepared | None, recorded: dict, row: int | None) -> Outcome:
        if request.op == "layers":
            return self.layers_result()
        if request.op == "filters":
            return self._filters(request)
        if request.op == "top_examples":
            return self._top_examples(request)
        return self._feature_maps(request, item, recorded[request.layer or self.model.layers.cam.name][row])

    def layers_result(self) -> LayersResult:
        spec = self.model.spec
        rows = layer_rows(self.layers, self.stored)
        return LayersResult(spec.name, {"channels": spec.input.channels, "height": spec.input.size[0],
                                        "width": spec.input.size[1]}, rows, self.model.layers.cam.label,
                            self.model.layers.feature.label, self.first_conv, tuple(self.stored))

    def _feature_maps(self, request: InspectRequest, item: Prepared, layer_maps: torch.Tensor) -> FeatureMapsResult:
        name = request.layer or self.model.layers.cam.name
        chosen = maps.choose_channels(layer_maps, request.channels, request.top)
        stats = maps.channel_stats(layer_maps, chosen)
        picked = layer_maps[chosen]
        grid = maps.feature_grid(picked, stats) if "grid" in request.outputs else None
        raw = maps.float16_bytes(picked) if "raw" in request.outputs else None
        size = output_size(item.image.size, self.config.max_output_side)
        array = None
        if "array" in request.outputs:
            if len(chosen) * size[0] * size[1] > MAX_MAP_VALUES:
                raise BadRequest(f"output=array of {len(chosen)} channels at {size[0]}x{size[1]} is "
                                 f"{len(chosen) * size[0] * size[1]:,} values; the limit is {MAX_MAP_VALUES:,}: "
                                 "ask for fewer channels, or output=raw (the layer's own resolution)")
            aligned, size = maps.aligned_maps(picked, self.model.spec.input.size, item.placement,
                                              item.image.size, self.config.max_output_side)
            array = maps.float16_bytes(aligned)
        return FeatureMapsResult(self.model.spec.name, name, tuple(layer_maps.shape), size[0], size[1],
                                 stats, grid, array, raw)

    def _filters(self, request: InspectRequest) -> FiltersResult:
        name = request.layer or self.first_conv
        if name is None:
            raise BadRequest(f"{self.model.spec.name} has no Conv2d layer")
        weight = conv_weight(name, self.modules[name])
        picture = filter_picture(weight, self.config.max_filter_tiles) if "grid" in request.outputs else None
        return FiltersResult(self.model.spec.name, name, tuple(weight.shape),
                             picture.mode if picture else ("rgb" if weight.shape[1] == 3 else "grey"),
                             picture.shown if picture else 0, picture.grid if picture else None,
                             maps.float16_bytes(weight) if "array" in request.outputs else None)

    def reader(self) -> ActivationReader:
        """The store, opened on first use (the neighbours worker may create it after this one
        starts) and brought up to date with every write committed since the last call."""
        if self._reader is None:
            if self.store_path is None or not self.store_path.exists():
                raise NotFound(f"{self.model.spec.name} has no top-activation store yet: {BUILD_HINT}")
            self._reader = ActivationReader.open(self.store_path)
        self._reader.refresh()
        return self._reader

    def _top_examples(self, request: InspectRequest) -> TopExamplesResult:
        name = request.layer or next(iter(self.stored))
        reader = self.reader()
        field, width = self.by_name[name].receptive_field, self.stored[name][2]
        examples, budget = [], MAX_PATCH_BYTES
        for key, value, position in reader.top(name, request.channel, request.k):
            try:
                row = reader.row(key)
            except NotFound:  # deleted since the refresh above: no longer a gallery image
                continue
            box = patch_box(field, position, width, row.info) if field is not None else (0, 0, *row.info["image_size"])
            patch = crop_patch(row.image, box, row.info) if request.patches else None
            budget -= len(patch or b"")
            if budget < 0:
                raise BadRequest(f"the patches of {request.k} examples exceed {MAX_PATCH_BYTES >> 20} MB: "
                                 "ask for a smaller k, or without patches")
            examples.append(TopExample(key, row.label, row.metadata, value, divmod(int(position), width), box,
                                       *row.info["image_size"], patch))
        return TopExamplesResult(self.model.spec.name, name, request.channel, reader.count(), tuple(examples))


_CHANNELS = re.compile(r"\[?\s*[0-9]{1,7}(\s*,\s*[0-9]{1,7})*\s*\]?")
"""ASCII digits only, as every integer parameter (never "²" or "٣"), optionally in one pair of brackets."""


def _channel_list(text: str, most: int) -> tuple[int, ...] | None:
    """``top`` -> None; ``3,17`` or ``[3, 17]`` -> (3, 17); anything else a 400."""
    text = text.strip()
    if text == "top":
        return None
    if not _CHANNELS.fullmatch(text) or text.startswith("[") != text.endswith("]"):
        raise BadRequest(f"channels must be \"top\" or a list of channel numbers such as 3,17,40; got {text[:40]!r}")
    channels = tuple(dict.fromkeys(int(p) for p in text.strip("[] ").split(",")))
    if len(channels) > most:
        raise BadRequest(f"{len(channels)} channels asked; the server cap max_feature_channels is {most}")
    return channels
