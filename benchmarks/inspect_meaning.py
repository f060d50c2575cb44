"""What the built-in models' channels mean, measured through ``<m>-inspect`` itself, each figure
beside a baseline: used by benchmarks/inspect_pictures.py (which prints them) and asserted by
tests/unit/test_inspect_meaning.py. Every request is the JSON a client would send.

* label purity: for each channel of a stored layer, how many of its top-k gallery examples carry
  the most common label (the digit; the scikit-image photo), against k random gallery images;
* first-layer filters: orientation selectivity and DC share of each 3x3 filter of the digits
  model, against Kaiming-initialised 3x3 filters, and the cosine of each with its own random
  initialisation (the build's seed);
* the first block as a whole (two 3x3 convolutions, a 5x5 field): the orientation selectivity
  index of its channels for oriented strokes, against the same network at random initialisations.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from convscope.build.digits import SEED as DIGITS_SEED
from convscope.envelope import Payload
from convscope.errors import ServiceError
from convscope.models.registry import build_architecture

ORIENTATIONS = 8
"""Stimulus orientations, evenly over 180 degrees."""
RELU6_CAP = 6.0
"""EfficientNet-Lite's activation is ReLU6: a channel maximum of 6.0 is a tie with every other."""


def ask(endpoint, image: bytes | None = None, **params):
    """One request as a client's JSON body arrives (``{"image": "<base64>", ...}``); the result
    object, or the ServiceError raised."""
    doc = {**params, **({"image": base64.b64encode(image).decode()} if image else {})}
    (outcome,) = endpoint.handle([Payload({"body": json.dumps(doc).encode()}, {"body": "application/json"})])
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


# --- label purity of top examples -----------------------------------------------------------

def gallery_maxima(inspect, ids: list[str], layer: str) -> np.ndarray:
    """float32 [N, C]: each gallery entry's stored channel maxima of ``layer``."""
    reader = inspect.reader()
    return np.stack([reader.row(i).layers[layer].maxima for i in ids])


def photo_of(inspect, ids: list[str]) -> dict[str, str]:
    """id -> the label of the first id (ascending) with the very same stored summaries: entries
    with identical pixels under two labels (scikit-image's ``cat`` is ``chelsea``) count once."""
    reader, first, out = inspect.reader(), {}, {}
    for i in sorted(ids):
        row = reader.row(i)
        key = b"".join(row.layers[n].maxima.tobytes() + row.layers[n].argmax.tobytes() for n in sorted(row.layers))
        first.setdefault(key, (i, row.label))
        out[i] = first[key][1] if first[key][0] == i else f"= {first[key][0]}"
    return out


def spread_channels(maxima: np.ndarray, count: int, cap: float | None = None) -> list[int]:
    """The ``count`` channels whose per-image maxima vary most over the gallery (standard
    deviation), skipping any that reach ``cap`` (there the top is a tie, ordered by id)."""
    spread = maxima.std(axis=0)
    if cap is not None:
        spread = np.where(maxima.max(axis=0) < cap, spread, -1.0)
    return [int(c) for c in np.argsort(-spread, kind="stable")[:count] if spread[c] >= 0]


def distinct_top(inspect, layer: str, channel: int, k: int, photo: dict[str, str], patches: bool = False):
    """The first ``k`` top examples that are not a duplicate (``photo`` maps a duplicate to "= id")
    and are in ``photo`` at all (the built gallery, not what a caller added)."""
    result = ask(inspect, op="top_examples", layer=layer, channel=channel, k=min(2 * k, 100), patches=patches)
    return [e for e in result.examples if e.id in photo and not photo[e.id].startswith("=")][:k]


@dataclass(frozen=True)
class Purity:
    k: int
    top: np.ndarray
    """int [channels]: how many of each channel's top-k carry its most common label."""
    random: np.ndarray
    """int [channels]: the same for k random gallery entries per channel (the baseline)."""

    def line(self, what: str, at_least: int) -> str:
        k, top, random = self.k, self.top, self.random
        return (f"{what}: {top.mean():.2f}/{k} share the most common label "
                f"(>= {at_least}/{k} in {(top >= at_least).mean():.0%} of {len(top)} channels); "
                f"random {k}: {random.mean():.2f}/{k} (>= {at_least}: {(random >= at_least).mean():.0%})")


def _most_common(labels: list[str]) -> int:
    return Counter(labels).most_common(1)[0][1]


def label_purity(inspect, layer: str, channels: list[int], k: int, photo: dict[str, str], seed: int = 0) -> Purity:
    """Top-k purity of ``channels`` through op=top_examples; the baseline draws k distinct
    non-duplicate entries per channel with numpy's generator seeded ``seed``."""
    pool = sorted(i for i, p in photo.items() if not p.startswith("="))
    rng = np.random.default_rng(seed)
    top = [_most_common([photo[e.id] for e in distinct_top(inspect, layer, c, k, photo)]) for c in channels]
    random = [_most_common([photo[pool[j]] for j in rng.choice(len(pool), k, replace=False)]) for _ in channels]
    return Purity(k, np.array(top), np.array(random))


# --- first-layer filters ----------------------------------------------------------------------

def stimuli(kind: str, side: int = 15, supersample: int = 8) -> np.ndarray:
    """float64 [ORIENTATIONS, side, side] in [0, 1], anti-aliased through the centre: ``step``
    (bright on one side; the normal turns over 180 degrees) or ``bar`` (a 2-pixel bright stroke)."""
    centre, offsets = (side - 1) / 2, (np.arange(supersample) + 0.5) / supersample - 0.5
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float64)
    out = np.zeros((ORIENTATIONS, side, side))
    for k in range(ORIENTATIONS):
        nx, ny = np.cos(np.pi * k / ORIENTATIONS), np.sin(np.pi * k / ORIENTATIONS)
        for dy in offsets:
            for dx in offsets:
                d = (xs + dx - centre) * nx + (ys + dy - centre) * ny
                out[k] += (d > 0) if kind == "step" else (np.abs(d) < 1.0)
    return out / supersample ** 2


def filter_stats(weights: np.ndarray, mean: float, std: float) -> dict[str, np.ndarray]:
    """For float [F, 3, 3] filters, per filter: ``selectivity`` (max - min) / (max + min) over
    orientations of the centre response, the larger of both polarities, to step edges and to
    strokes (``bar``), the stimuli in the network's input units ((x - mean) / std, so a stroke is
    white ink on black as MNIST is); ``dc_share`` |sum w| / sum |w| (0: a zero-sum edge filter)."""
    out = {"dc_share": np.abs(weights.sum(axis=(1, 2))) / np.abs(weights).sum(axis=(1, 2))}
    for kind in ("step", "bar"):
        image = stimuli(kind)
        c = image.shape[-1] // 2
        both = np.stack([image, 1.0 - image])[..., c - 1:c + 2, c - 1:c + 2]  # [polarity, orient, 3, 3]
        response = np.abs(np.einsum("pkij,fij->fpk", (both - mean) / std, weights)).max(axis=1)
        high, low = response.max(axis=1), response.min(axis=1)
        out[f"selectivity_{kind}"] = (high - low) / np.maximum(high + low, 1e-12)
    return out


def kaiming_filters(count: int, seed: int = 0) -> np.ndarray:
    """float32 [count, 3, 3]: 3x3 one-input filters as ``nn.init.kaiming_normal_`` draws them."""
    weights = torch.empty(count, 1, 3, 3)
    torch.nn.init.kaiming_normal_(weights, generator=torch.Generator().manual_seed(seed))
    return weights[:, 0].numpy()


def set_medians(values: np.ndarray, size: int, sets: int, seed: int = 1) -> np.ndarray:
    """Medians of ``sets`` random subsets of ``size`` values: the spread of a median over
    ``size`` random filters, to compare with the median over the trained ones."""
    order = np.random.default_rng(seed).permutation(len(values))[:size * sets]
    return np.median(values[order].reshape(sets, size), axis=1)


def initial_module(arch: str, num_classes: int, channels: int, seed: int) -> torch.nn.Module:
    """The architecture with its random initial weights after ``torch.manual_seed(seed)`` (the
    way convscope/build/digits.py starts training); the global RNG state is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_architecture(arch, num_classes, channels).eval()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two [F, ...] arrays."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- the first block's orientation selectivity ----------------------------------------------

def stroke_inputs(side: int, mean: float, std: float) -> torch.Tensor:
    """float32 [ORIENTATIONS, 1, side, side]: a 2-pixel white stroke on black through the centre,
    in the network's input units, fed to the module directly (the endpoint's MNIST-style
    preprocessing would rescale each by its ink's bounding box)."""
    return torch.from_numpy(((stimuli("bar", side) - mean) / std).astype(np.float32))[:, None]


def orientation_index(module: torch.nn.Module, layer: str, inputs: torch.Tensor) -> np.ndarray:
    """The orientation selectivity index |sum r e^(2i theta)| / sum r of each channel of
    ``layer`` that responds at all, r the mean response on the centre 2x2 units per orientation
    (1: only one orientation; 0: all alike)."""
    seen = {}
    handle = dict(module.named_modules())[layer].register_forward_hook(lambda _m, _i, out: seen.update(out=out))
    try:
        with torch.inference_mode():
            module(inputs)
    finally:
        handle.remove()
    maps = seen["out"].float()
    cy, cx = maps.shape[2] // 2, maps.shape[3] // 2
    r = maps[:, :, cy - 1:cy + 1, cx - 1:cx + 1].mean(dim=(2, 3)).clamp(min=0).numpy()  # [orient, C]
    live = r.max(axis=0) > 1e-3
    phase = np.exp(2j * np.pi * np.arange(ORIENTATIONS) / ORIENTATIONS)[:, None]
    return (np.abs((r * phase).sum(axis=0)) / np.maximum(r.sum(axis=0), 1e-12))[live]


# --- the figures the docs report ------------------------------------------------------------

DIGITS_DEEP, PHOTO_LAYER = "features", "bn2"


def digits_purity(inspect, ids: list[str], k: int = 9) -> Purity:
    """Every channel of the digits model's last conv block, its top-k digits' labels."""
    channels = list(range(inspect.stored[DIGITS_DEEP][0]))
    reader = inspect.reader()
    return label_purity(inspect, DIGITS_DEEP, channels, k, {i: reader.row(i).label for i in ids})


def photo_channels(inspect, ids: list[str], count: int | None = 4) -> list[int]:
    """bn2 channels by the stated rule: largest spread of per-image maxima over the gallery,
    among those that never reach the ReLU6 cap (``count`` None: all of those, by spread)."""
    maxima = gallery_maxima(inspect, ids, PHOTO_LAYER)
    return spread_channels(maxima, count or maxima.shape[1], cap=RELU6_CAP)


def photo_purity(inspect, ids: list[str], channels: list[int], k: int = 6) -> Purity:
    """Top-k photo purity of bn2 ``channels``: how many of the k distinct images are views of one photo."""
    return label_purity(inspect, PHOTO_LAYER, channels, k, photo_of(inspect, ids))


@dataclass(frozen=True)
class FilterMeaning:
    trained: dict[str, np.ndarray]
    """filter_stats of the model's first convolution (32 filters)."""
    initial: dict[str, np.ndarray]
    """filter_stats of the same filters' initial weights (the build's seed)."""
    random: dict[str, np.ndarray]
    """filter_stats of 20,000 Kaiming-normal 3x3 filters."""
    init_cosine: np.ndarray
    """float [32]: each trained filter's cosine with its own initial weights."""

    def band(self, stat: str, low: float = 0.01, high: float = 0.99) -> tuple[float, float]:
        """The central range of the median over as many random filters as the layer has."""
        medians = set_medians(self.random[stat], len(self.init_cosine), 600)
        return float(np.quantile(medians, low)), float(np.quantile(medians, high))


def filter_meaning(inspect, build_seed: int = DIGITS_SEED) -> FilterMeaning:
    """The first convolution's weights through op=filters (output=array), against random 3x3s
    and against the initial weights the build's seed gave them."""
    result = ask(inspect, op="filters", output=["array"])
    weights = np.frombuffer(result.array, "<f2").reshape(result.shape).astype(np.float32)[:, 0]
    spec = inspect.model.spec
    mean, std = spec.input.mean[0], spec.input.std[0]
    start = dict(initial_module(spec.arch, spec.num_classes, spec.input.channels, build_seed)
                 .named_modules())[result.layer].weight.detach().numpy()[:, 0]
    return FilterMeaning(filter_stats(weights, mean, std), filter_stats(start, mean, std),
                         filter_stats(kaiming_filters(20_000), mean, std), cosine_rows(weights, start))


def block_meaning(inspect, layer: str = "features.0", seeds: range = range(1000, 1010)) -> tuple[float, list[float]]:
    """The median orientation index of ``layer``'s channels: trained, and at each random init."""
    spec = inspect.model.spec
    inputs = stroke_inputs(spec.input.size[0], spec.input.mean[0], spec.input.std[0])
    trained = float(np.median(orientation_index(inspect.model.module, layer, inputs)))
    random = [float(np.median(orientation_index(initial_module(spec.arch, spec.num_classes, 1, s), layer, inputs)))
              for s in seeds]
    return trained, random
