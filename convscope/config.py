"""Engine configuration: parsed once, at worker start, into a typed frozen object.

Sources, lowest precedence first: the defaults below, then the ``convscope:`` table of the
archive's model-config YAML (``context.model_yaml_config``). Nothing in the request path reads
the environment or a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .errors import SpecError

CPU_CHUNK_PER_THREAD = 2
GPU_CHUNK = 32


@dataclass(frozen=True)
class EngineConfig:
    max_image_bytes: int = 8 * 1024 * 1024
    """Largest encoded image accepted, in bytes (TorchServe's ``max_request_size`` caps the body)."""

    max_image_pixels: int = 40_000_000
    """Largest width x height accepted, checked from the header before any pixel is decoded."""

    max_image_side: int = 16_384
    """Largest width or height accepted, in pixels."""

    max_top_k: int = 100
    """Server-side cap on ``top_k``; larger values are a 400 that names the cap."""

    max_samples: int = 256
    """Cap on SmoothGrad ``samples``."""

    max_lime_samples: int = 5000
    """Cap on LIME ``samples`` (perturbed copies, one forward pass each: 1,000, the default, take
    about 11 s of one CPU thread on efficientnet_lite0 under ONNX Runtime)."""

    max_steps: int = 512
    """Cap on integrated-gradients ``steps``."""

    max_occlusion_windows: int = 4096
    """Cap on the number of occlusion window positions a request's window and stride give."""

    max_neighbours: int = 1000
    """Cap on ``k`` for nearest-neighbour search; larger values are a 400 that names the cap
    (``k`` above the index's count, but within the cap, is clamped to the count)."""

    max_projection_points: int = 5000
    """Most points one ``op=project`` lays out (t-SNE of 4,000 takes about 10 s on 2 cores); a
    larger subset is a 400 that names this cap."""

    projection_cache_entries: int = 16
    """Projections of the current index version kept for repeated calls (any write empties it)."""

    max_feature_channels: int = 64
    """Cap on the channels one ``op=feature_maps`` answers (``top`` or an explicit list)."""

    max_top_examples: int = 100
    """Cap on ``k`` for ``op=top_examples``."""

    max_filter_tiles: int = 1024
    """Most tiles in an ``op=filters`` grid (the raw weights array always holds every filter)."""

    explain_chunk_size: int | None = field(default=None, metadata={"optional": True})
    """Most images in one forward pass of an explanation (noisy copies, path points, occluded
    copies, Score-CAM masks): memory stays bounded whatever a request asks for. Unset: chosen
    by device (``chunk_for``)."""

    max_output_side: int = 1024
    """Explanation maps are aligned with the client image; images with a longer side are
    answered at this size (aspect kept)."""

    explanation_niceness: int = field(default=5, metadata={"range": (0, 19)})
    """The saliency and CAM workers lower their CPU priority by this much (``nice``): on a
    shared CPU the scheduler then favours classification, features and search, so a stream of
    Score-CAM requests cannot starve them (benchmarks/starvation.py)."""

    intra_op_threads: int = 1
    """torch threads per worker. Workers x threads should not exceed the cores: TorchServe runs
    one process per endpoint, so the default is 1 and one request never fights another."""

    def chunk_for(self, device_type: str) -> int:
        """``explain_chunk_size``, or when unset the measured best for ``device_type``: on the
        CPU, 2 images per intra-op thread (at 1 thread a forward plus input gradient costs 36 ms
        an image at 2, 69 ms at 32: larger passes fall out of cache; docs/performance.md); on a
        GPU, 32 (passes fill the device)."""
        if self.explain_chunk_size is not None:
            return self.explain_chunk_size
        return CPU_CHUNK_PER_THREAD * self.intra_op_threads if device_type == "cpu" else GPU_CHUNK

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "EngineConfig":
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SpecError(f"unknown engine config key(s) {unknown}; known: {sorted(known)}")
        for key, value in values.items():
            if value is None and known[key].metadata.get("optional"):
                continue
            low, high = known[key].metadata.get("range", (1, None))  # a positive integer unless the field says
            if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
                raise SpecError(f"engine config {key} must be an integer from {low}"
                                f"{f' to {high}' if high else ' up'}, got {value!r}")
        return cls(**values)
