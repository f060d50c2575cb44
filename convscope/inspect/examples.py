"""What the top-activation store keeps for a gallery image, and how a stored maximum becomes a
patch of the original image.

For each stored layer a row holds every channel's maximum and its position (``summaries``);
``info`` holds where the image was placed in the network input, so the receptive field of that
position (in input pixels) maps back onto the original image (``patch_box``); ``image_copy`` is
the downscaled copy patches are cut from.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import BadRequest, SpecError
from ..index import FeatureIndex
from ..index.activations import STORE_FILE, ActivationStore, LayerSummary
from ..models import LoadedModel, Tap, resolve_tap
from ..preprocess import Placement
from .maps import activations, summarise
from .receptive import LayerInfo, ReceptiveField, trace_layers

log = logging.getLogger(__name__)
PATCH_SIDE = 256
"""Patches are cut at the stored copy's resolution and shrunk to this longer side at most."""
SEED_FILE = "gallery-activations.sqlite"
"""A built top-activation store inside a model archive, copied the first time the store opens."""


def auto_layers(layers: Sequence[LayerInfo], cam: Tap) -> tuple[str, ...]:
    """The CAM layer, and the outermost layer (fewest dots; the last of those to finish) whose map
    has twice the CAM layer's resolution: one high-level and one mid-level layer."""
    by_name = {layer.name: layer for layer in layers}
    chosen = [cam.name] if cam.name in by_name and not cam.use_input else []
    if not chosen:
        return ()
    height = by_name[cam.name].shape[1]
    finer = [layer for layer in layers if layer.shape[1] == 2 * height]
    if finer:
        depth = min(layer.name.count(".") for layer in finer)
        chosen.append([layer for layer in finer if layer.name.count(".") == depth][-1].name)
    return tuple(chosen)


def stored_layers(model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, tuple[int, int, int]]:
    """{name: (C, h, w)} of the layers the spec's ``[inspect] layers`` names ("auto": see
    ``auto_layers``). A name that is not a spatial layer is a SpecError listing some that are."""
    by_name = {layer.name: layer for layer in layers}
    wanted = model.spec.inspect.layers
    names = auto_layers(layers, model.layers.cam) if wanted == "auto" else tuple(wanted)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SpecError(f"inspect.layers names {missing}, which are not spatial layers of "
                        f"{model.spec.name}; e.g. {[layer.name for layer in layers][-5:]}")
    return {name: tuple(by_name[name].shape) for name in names}


def layer_rows(layers: Sequence[LayerInfo], stored: dict[str, Any]) -> tuple[dict, ...]:
    """``op=layers``' rows (and the model card's): each layer's description and whether it is stored."""
    return tuple({**layer.to_dict(), "stored": layer.name in stored} for layer in layers)


def summaries(model: LoadedModel, names: Sequence[str], inputs: torch.Tensor) -> list[dict[str, LayerSummary]]:
    """Per image of inputs float32 [B, C, H, W]: {layer: each channel's max and flat argmax}."""
    maps = activations(model, {n: resolve_tap(model.module, n) for n in names}, inputs)
    per_layer = {n: [t.cpu().numpy() for t in summarise(maps[n])] for n in names}
    return [{n: LayerSummary(per_layer[n][0][i], per_layer[n][1][i]) for n in names}
            for i in range(inputs.shape[0])]


def image_copy(image: Image.Image, side: int) -> tuple[bytes | None, float]:
    """The image with its longer side at most ``side`` (JPEG, or PNG when small), and the scale applied
    (copy pixels per original pixel); ``side`` 0 keeps no copy."""
    if side <= 0:
        return None, 0.0
    scale = min(1.0, side / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if max(image.size) > 64:  # a photo: JPEG at quality 90 is a sixth of the PNG's size
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    else:  # a small image (a digit): lossless
        image.convert("RGB").save(buffer, "PNG", compress_level=6)
    return buffer.getvalue(), scale


def row_info(placement: Placement, copy_scale: float) -> dict[str, Any]:
    return {"image_size": list(placement.image_size), "source": list(placement.source),
            "target": list(placement.target), "copy_scale": copy_scale}


def patch_box(field: ReceptiveField, position: int, map_width: int, info: dict[str, Any]) -> tuple[int, int, int, int]:
    """The receptive field of flat ``position`` in a map ``map_width`` wide, as (x0, y0, x1, y1)
    in the original image's pixels (x1, y1 exclusive), clipped to the image."""
    y, x = divmod(int(position), map_width)
    ix0, iy0, ix1, iy1 = field.box(y, x)
    tx0, ty0, tx1, ty1 = info["target"]
    sx0, sy0, sx1, sy1 = info["source"]
    width, height = info["image_size"]
    scale_x, scale_y = (sx1 - sx0) / max(1, tx1 - tx0), (sy1 - sy0) / max(1, ty1 - ty0)

    def clip(value: float, offset: float, origin: float, scale: float, high: int, rounding) -> int:
        return int(min(max(rounding(origin + (value - offset) * scale), 0), high))

    return (clip(ix0, tx0, sx0, scale_x, width, np.floor), clip(iy0, ty0, sy0, scale_y, height, np.floor),
            clip(ix1, tx0, sx0, scale_x, width, np.ceil), clip(iy1, ty0, sy0, scale_y, height, np.ceil))


def crop_patch(copy: bytes | None, box: tuple[int, int, int, int], info: dict[str, Any]) -> bytes:
    """``box`` (original pixels) cut from the stored copy, as PNG, its longer side at most
    ``PATCH_SIDE``. BadRequest when the store keeps no images."""
    if not copy:
        raise BadRequest("this model's top-activation store keeps no images ([inspect] image_side = 0): "
                         "ask without patches")
    scale = info["copy_scale"]
    with Image.open(io.BytesIO(copy)) as image:
        x0, y0, x1, y1 = (int(np.floor(box[0] * scale)), int(np.floor(box[1] * scale)),
                          int(np.ceil(box[2] * scale)), int(np.ceil(box[3] * scale)))
        patch = image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
        if max(patch.size) > PATCH_SIDE:  # a deep layer's field is the whole image: a thumbnail is enough
            patch.thumbnail((PATCH_SIDE, PATCH_SIDE), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        patch.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def open_model_store(model: LoadedModel, directory: Path, index: FeatureIndex,
                     seed: Path | None = None) -> ActivationStore | None:
    """The writer of the model's top-activation store in ``directory`` (beside its feature index),
    or None when the model serves no ``inspect`` or stores no layer. A new store starts as a copy
    of ``seed``; then every row whose id ``index`` does not hold is dropped (after a crash between
    the two writes, see docs/neighbours.md)."""
    if "inspect" not in model.spec.endpoints:
        return None
    layers = stored_layers(model, trace_layers(model.module, model.input_shape))
    if not layers:
        return None
    store = ActivationStore.open(directory / STORE_FILE, layers, seed=seed if seed and seed.exists() else None)
    removed = store.reconcile(index.contains)
    if removed:
        log.warning("%s: dropped %d top-activation rows whose ids the feature index does not hold",
                    model.spec.name, removed)
    return store
