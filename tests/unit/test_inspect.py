"""``<m>-inspect`` in-process on the built-in models and galleries, against independent
computations: feature maps against a plain PyTorch forward hook, filters against the module's
own weights, ``top_examples`` against a brute-force scan of the gallery, and the two endpoints
against each other (the value ``top_examples`` reports is what ``feature_maps`` reports)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.build.digits import load_digits, split
from convscope.errors import BadRequest, NotFound, ServiceError
from convscope.preprocess import image_input, prepare_input
from convscope.config import EngineConfig
from convscope.schemas import FeatureMapsResult, FiltersResult, LayersResult, TopExamplesResult
from tests.payloads import json_payload as _json
from tests.payloads import one as _one
from tests.imaging import encode, photo_bytes, rendered_digits




def _hooked(model, layer: str, tensor: torch.Tensor) -> torch.Tensor:
    """The layer's output for one input float32 [C, H, W], by a forward hook on a plain pass."""
    seen = {}
    module = dict(model.module.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, out: seen.__setitem__("out", out.detach().clone()))
    try:
        with torch.no_grad():
            model.module(tensor[None])
    finally:
        handle.remove()
    return seen["out"][0].float()


def _f16(doc: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(doc["data"]), "<f2").reshape(doc["shape"])


def _digit_png(row: int) -> bytes:
    images, _ = load_digits()
    return encode(Image.fromarray(images[row]).convert("RGB"), "PNG")


def test_layers_list_every_spatial_layer_in_forward_order_with_fields(endpoints):
    result = _one(endpoints["digits-inspect"], _json())
    assert isinstance(result, LayersResult)
    doc = result.to_dict()
    names = [layer["name"] for layer in doc["layers"]]
    assert names[0] == "features.0.0" and "features" in names and doc["cam_layer"] == "features"
    assert doc["first_conv"] == "features.0.0" and doc["stored_layers"] == ["features", "features.2"]
    last = doc["layers"][names.index("features")]
    assert last["shape"] == [128, 7, 7] and last["stored"] is True
    assert last["receptive_field"]["jump"] == [4, 4]


def test_feature_maps_match_a_forward_hook(endpoints, lite0):
    image = photo_bytes("chelsea")
    result = _one(endpoints["efficientnet_lite0-inspect"],
                  _json(op="feature_maps", image=image, layer="blocks.4", top=8, output="grid,raw"))
    assert isinstance(result, FeatureMapsResult), result
    decoded, tensor, _ = image_input(image, lite0.spec.input, EngineConfig(), full_image=True)
    maps = _hooked(lite0, "blocks.4", tensor)
    means = maps.mean(dim=(1, 2))
    expected = torch.argsort(-means, stable=True)[:8].tolist()
    assert [c.channel for c in result.channels] == expected
    for stats in result.channels:
        assert stats.mean == pytest.approx(float(means[stats.channel]), rel=1e-3, abs=1e-4)
        assert stats.max == pytest.approx(float(maps[stats.channel].max()), rel=1e-3, abs=1e-4)
        y, x = stats.argmax
        assert float(maps[stats.channel, y, x]) == pytest.approx(stats.max, rel=1e-3, abs=1e-4)
    raw = _f16(result.to_dict()["raw"])
    np.testing.assert_allclose(raw, maps[expected].numpy(), rtol=2e-3, atol=2e-3)
    grid = Image.open(io.BytesIO(result.grid))
    assert grid.mode == "RGB" and grid.width > 100 and (result.width, result.height) == decoded.size


def test_explicit_channels_in_order_and_aligned_arrays(endpoints, digits_model):
    _, image = rendered_digits(1, seed=3)[7]
    result = _one(endpoints["digits-inspect"], _json(op="feature_maps", image=image, channels=[5, 2, 90],
                                                     output=["array"]))
    assert [c.channel for c in result.channels] == [5, 2, 90] and result.grid is None
    array = _f16(result.to_dict()["array"])
    assert array.shape == (3, result.height, result.width)
    assert (result.width, result.height) == Image.open(io.BytesIO(image)).size
    for stats, aligned in zip(result.channels, array):  # bilinear resampling never exceeds the max
        assert aligned.max() <= stats.max * 1.001 + 1e-3 and aligned.min() >= -1e-3


def test_filters_are_the_modules_own_weights(endpoints, digits_model, lite0):
    grey = _one(endpoints["digits-inspect"], _json(op="filters", output="grid,array"))
    assert isinstance(grey, FiltersResult) and grey.layer == "features.0.0" and grey.mode == "grey"
    weight = dict(digits_model.module.named_modules())["features.0.0"].weight.detach()
    np.testing.assert_allclose(_f16(grey.to_dict()["array"]), weight.numpy(), rtol=1e-3, atol=1e-4)
    assert grey.shape == (32, 1, 3, 3) and grey.shown == 32
    rgb = _one(endpoints["efficientnet_lite0-inspect"], _json(op="filters"))
    assert rgb.mode == "rgb" and rgb.shape == (32, 3, 3, 3) and rgb.array is None
    assert Image.open(io.BytesIO(rgb.grid)).mode == "RGB"


def _gallery_maxima(model, layer: str) -> tuple[list[str], np.ndarray]:
    """Brute force: every training digit through a plain forward hook, each channel's max."""
    images, labels = load_digits()
    train, _ = split(labels)
    tensors = torch.stack([prepare_input(Image.fromarray(images[r]).convert("RGB"), model.spec.input)[0]
                           for r in train.tolist()])
    module = dict(model.module.named_modules())[layer]
    chunks = []
    handle = module.register_forward_hook(lambda _m, _i, out: chunks.append(out.detach().flatten(2).amax(2)))
    try:
        with torch.no_grad():
            for start in range(0, len(tensors), 500):
                model.module(tensors[start:start + 500])
    finally:
        handle.remove()
    return [f"digits/train/{r:04d}" for r in train.tolist()], torch.cat(chunks).float().numpy()


@pytest.mark.parametrize("layer, channel", [("features", 17), ("features.2", 40)])
def test_top_examples_match_a_brute_force_scan(endpoints, digits_model, layer, channel):
    ids, maxima = _gallery_maxima(digits_model, layer)
    result = _one(endpoints["digits-inspect"], _json(op="top_examples", layer=layer, channel=channel, k=12))
    assert isinstance(result, TopExamplesResult), result
    values = maxima[:, channel].astype(np.float16).astype(np.float64)
    reported = [e.activation for e in result.examples]
    np.testing.assert_allclose(reported, np.sort(values)[::-1][:12], rtol=1e-3)
    for example in result.examples:  # the ids are the ones with those values (ties in any order)
        assert values[ids.index(example.id)] == pytest.approx(example.activation, rel=1e-3)
    assert result.count >= len(ids)


def test_photo_top_examples_match_a_brute_force_scan(endpoints, lite0, store):
    """efficientnet_lite0's 72 gallery views, each decoded from its file as the gallery build
    read it, through a forward hook on bn2: the store's top-5 of a channel are the scan's."""
    photos = store / "build" / "photos"
    ids = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png"))
    maxima = np.stack([_hooked(lite0, "bn2", image_input((photos / i).read_bytes(), lite0.spec.input,
                                                         EngineConfig(), full_image=True)[1]).flatten(1).amax(1).numpy()
                       for i in ids])
    for channel in (0, 700):
        result = _one(endpoints["efficientnet_lite0-inspect"], _json(op="top_examples", channel=channel, k=5))
        values = maxima[:, channel].astype(np.float16).astype(np.float64)
        fifth = np.sort(values)[::-1][4]
        np.testing.assert_allclose([e.activation for e in result.examples], np.sort(values)[::-1][:5], rtol=2e-3)
        clearly_above = {ids[i] for i in np.flatnonzero(values > fifth * (1 + 2e-3))}
        assert clearly_above <= {e.id for e in result.examples}  # only near-ties may swap places


def test_top_examples_agree_with_feature_maps_of_the_same_image(endpoints):
    top = _one(endpoints["digits-inspect"], _json(op="top_examples", layer="features", channel=3, k=3, patches=True))
    for example in top.examples:
        image = _digit_png(example.metadata["row"])
        maps = _one(endpoints["digits-inspect"], _json(op="feature_maps", image=image, layer="features", channels=[3]))
        (stats,) = maps.channels
        assert stats.max == pytest.approx(example.activation, rel=2e-3, abs=2e-3)
        assert tuple(stats.argmax) == tuple(example.position)
        x0, y0, x1, y1 = example.box
        assert 0 <= x0 < x1 <= example.width and 0 <= y0 < y1 <= example.height
        patch = Image.open(io.BytesIO(example.patch))
        assert patch.size == (x1 - x0, y1 - y0)


def test_an_added_image_becomes_a_top_example_and_leaves_with_its_delete(endpoints):
    neighbours, inspect = endpoints["digits-neighbours"], endpoints["digits-inspect"]
    best = _one(inspect, _json(op="top_examples", layer="features", channel=9, k=1)).examples[0]
    image = _digit_png(best.metadata["row"])
    added = _one(neighbours, _json(op="add", id="unit/inspect-copy", label="copy", image=image))
    assert not isinstance(added, ServiceError), added
    found = _one(inspect, _json(op="top_examples", layer="features", channel=9, k=2))
    assert "unit/inspect-copy" in [e.id for e in found.examples]
    assert {e.activation for e in found.examples} == {best.activation}
    assert not isinstance(_one(neighbours, _json(op="delete", id="unit/inspect-copy")), ServiceError)
    after = _one(inspect, _json(op="top_examples", layer="features", channel=9, k=2))
    assert "unit/inspect-copy" not in [e.id for e in after.examples]


@pytest.mark.parametrize("doc, words", [
    ({"op": "feature_maps", "layer": "nope"}, ["unknown layer 'nope'", "features.0.0", "features.2"]),
    ({"op": "top_examples", "channel": 128}, ["channel 128 out of range", "128 channels"]),
    ({"op": "top_examples", "channel": 1, "k": 101}, ["max_top_examples"]),
    ({"op": "top_examples", "layer": "features.0.0", "channel": 1}, ["not in digits's top-activation store", "features.2"]),
    ({"op": "top_examples"}, ["needs a channel"]),
    ({"op": "feature_maps"}, ["needs an image"]),
    ({"op": "filters", "k": 3}, ["do not apply to op=filters"]),
    ({"op": "filters", "layer": "features.0.1"}, ["not a 2-D convolution"]),
    ({"op": "feature_maps", "channels": "1,x"}, ["channels must be"]),
    ({"op": "filters", "output": "raw"}, ["does not apply to op=filters"]),
])
def test_bad_input_is_a_400_that_says_why_and_fails_alone(endpoints, doc, words):
    _, image = rendered_digits(1, seed=5)[2]
    if doc["op"] == "feature_maps" and "layer" in doc or "channels" in doc:
        doc = {**doc, "image": image}
    bad, good = endpoints["digits-inspect"].handle([_json(**doc), _json(op="feature_maps", image=image)])
    assert isinstance(bad, BadRequest), bad
    for word in words:
        assert word in bad.message, bad.message
    assert isinstance(good, FeatureMapsResult)


@pytest.mark.parametrize("channels", ["²", "٣", "[[3]]", "3]", "[3", "1,,2", [[3]], ["3,4"], [True], 3.5])
def test_malformed_channel_lists_are_400s(endpoints, channels):
    _, image = rendered_digits(1, seed=5)[2]
    bad = _one(endpoints["digits-inspect"], _json(op="feature_maps", image=image, channels=channels))
    assert isinstance(bad, BadRequest) and "channels must be" in bad.message, bad


@pytest.mark.parametrize("channels", ["[3, 17]", " 3 , 17 ", [3, 17], 3])
def test_channel_lists_in_every_spelling(endpoints, channels):
    _, image = rendered_digits(1, seed=5)[2]
    result = _one(endpoints["digits-inspect"], _json(op="feature_maps", image=image, channels=channels))
    assert [c.channel for c in result.channels] == ([3] if channels == 3 else [3, 17])


def test_patches_are_thumbnails_within_a_byte_budget(endpoints, monkeypatch):
    from convscope.endpoints import inspect as module

    top = _one(endpoints["efficientnet_lite0-inspect"], _json(op="top_examples", channel=5, k=20, patches=True))
    sizes = [Image.open(io.BytesIO(e.patch)).size for e in top.examples]
    assert max(max(s) for s in sizes) <= 256  # bn2's field is the whole photo: a thumbnail of it
    monkeypatch.setattr(module, "MAX_PATCH_BYTES", sum(len(e.patch) for e in top.examples) - 1)
    over = _one(endpoints["efficientnet_lite0-inspect"], _json(op="top_examples", channel=5, k=20, patches=True))
    assert isinstance(over, BadRequest) and "smaller k" in over.message


def test_channel_out_of_range_for_feature_maps(endpoints):
    _, image = rendered_digits(1, seed=5)[2]
    bad = _one(endpoints["digits-inspect"], _json(op="feature_maps", image=image, channels="127,128"))
    assert isinstance(bad, BadRequest) and "out of range" in bad.message and "0-127" in bad.message


def test_top_examples_without_a_store_say_how_to_build_it(endpoints, digits_model, tmp_path):
    from convscope.endpoints import build_endpoint

    bare = build_endpoint("inspect", digits_model, EngineConfig(), store_path=tmp_path / "missing.sqlite")
    result = _one(bare, _json(op="top_examples", channel=1))
    assert isinstance(result, NotFound) and "convscope-index ingest" in result.message
