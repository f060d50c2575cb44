"""Saliency and CAM endpoints in-process: parameters, mixed batches, outputs, alignment."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from convscope import metrics
from convscope.config import EngineConfig
from convscope.endpoints import build_endpoint
from convscope.envelope import Payload
from convscope.errors import BadRequest
from convscope.render import viridis_lut
from tests.imaging import encode, photo_bytes, rendered_digits


@pytest.fixture(scope="module")
def saliency(digits_model):
    return build_endpoint("saliency", digits_model, EngineConfig())


@pytest.fixture(scope="module")
def cam(digits_model):
    return build_endpoint("cam", digits_model, EngineConfig())


@pytest.fixture(scope="module")
def digit():
    return rendered_digits(1)[3][1]


def _ask(endpoint, image, **params):
    fields = {"data": image, **{k: str(v).encode() for k, v in params.items()}}
    return endpoint.handle([Payload(fields)])[0]


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("params, words", [
    ({"method": "telepathy"}, "method must be one of"),
    ({"target": -1}, "between 0 and 9"),
    ({"target": 10}, "between 0 and 9"),
    ({"target": "x"}, "integer"),
    ({"method": "smoothgrad", "samples": 100000}, "server cap max_samples"),
    ({"method": "integrated_gradients", "steps": 100000}, "server cap max_steps"),
    ({"method": "occlusion", "window": 29}, "between 1 and 28"),
    ({"method": "occlusion", "window": 4, "stride": 6}, "cannot exceed window"),
    ({"method": "gradient", "samples": 5}, "samples does not apply to gradient (only to smoothgrad, lime)"),
    ({"method": "gradient", "polarity": "negative"}, "signed methods only"),
    ({"output": "heatmap,movie"}, "output must be one of"),
    ({"clip_low": 90, "clip_high": 10}, "clip_low must be below clip_high"),
    ({"alpha": 2}, "between 0.0 and 1.0"),
])
def test_saliency_bad_parameters_are_400(saliency, digit, params, words):
    outcome = _ask(saliency, digit, **params)
    assert isinstance(outcome, BadRequest) and outcome.status == 400, outcome
    assert words in outcome.message


def test_occlusion_window_count_is_capped(digits_model, digit):
    endpoint = build_endpoint("saliency", digits_model, EngineConfig(max_occlusion_windows=100))
    outcome = _ask(endpoint, digit, method="occlusion", window=2, stride=2)
    assert isinstance(outcome, BadRequest) and "196 positions" in outcome.message
    assert "max_occlusion_windows is 100" in outcome.message


@pytest.mark.parametrize("params, words", [
    ({"method": "gradcam", "layer": "no.such.layer"}, "no layer 'no.such.layer'"),
    ({"method": "gradcam", "layer": "fc"}, "[B,C,H,W]"),
    ({"method": "cam"}, "global-average-pool + linear"),
    ({"method": "cam", "layer": "features"}, "layer does not apply to cam"),
])
def test_cam_bad_requests_are_400(cam, digit, params, words):
    outcome = _ask(cam, digit, **params)
    assert isinstance(outcome, BadRequest), outcome
    assert words in outcome.message


def test_mixed_methods_targets_and_a_bad_item_in_one_batch(cam, digit):
    requests = [{"method": "gradcam", "target": 3}, {"method": "layercam"},
                {"method": "gradcam", "target": 8}, {"method": "telepathy"},
                {"method": "scorecam", "target": 1}]
    payloads = [Payload({"data": digit, **{k: str(v).encode() for k, v in r.items()}}) for r in requests]
    outcomes = cam.handle(payloads)
    assert [o.method for o in outcomes if not isinstance(o, BadRequest)] == ["gradcam", "layercam", "gradcam", "scorecam"]
    assert isinstance(outcomes[3], BadRequest)
    alone = _ask(cam, digit)  # default target: its own top-1 class
    assert outcomes[0].target == 3 and outcomes[2].target == 8 and outcomes[4].target == 1
    assert outcomes[1].target == alone.target
    for i in (0, 2):  # each item as if it came alone
        single = _ask(cam, digit, method="gradcam", target=requests[i]["target"])
        assert outcomes[i].heatmap == single.heatmap


def test_outputs_align_with_the_client_image(saliency):
    image = Image.fromarray(np.full((120, 333, 3), 245, np.uint8))
    image.paste((10, 10, 10), (150, 30, 180, 100))  # one dark stroke on light paper
    result = _ask(saliency, encode(image, "PNG"), method="gradient", output="heatmap,overlay,array")
    assert (result.width, result.height) == (333, 120)
    heat = np.asarray(_png(result.heatmap))
    assert heat.shape == (120, 333) and _png(result.overlay).size == (333, 120)
    array = np.frombuffer(result.array, dtype="<f2").reshape(120, 333)
    assert np.allclose(array, heat / 255, atol=1 / 255 + 1e-3)
    # digits crops the ink and centres it: the map lands on the stroke's box, 0 far from it
    assert heat[:, :100].max() == 0 and heat[30:100, 150:180].max() > 0
    wire = result.to_dict()
    assert set(wire) >= {"heatmap", "overlay", "array"} and wire["array"]["shape"] == [120, 333]
    assert base64.b64decode(wire["heatmap"]) == result.heatmap


def test_large_images_are_answered_at_the_documented_downscale(lite0):
    endpoint = build_endpoint("cam", lite0, EngineConfig(max_output_side=256))
    big = encode(Image.fromarray(np.zeros((600, 1000, 3), np.uint8)), "PNG")
    result = _ask(endpoint, big, method="gradcam")
    assert (result.width, result.height) == (256, 154) and _png(result.heatmap).size == (256, 154)


def test_chelsea_gradcam_puts_its_mass_on_the_cat(lite0):
    endpoint = build_endpoint("cam", lite0, EngineConfig())
    result = _ask(endpoint, photo_bytes("chelsea"), method="gradcam", target=285)
    heat = np.asarray(_png(result.heatmap), dtype=np.float64)
    cat = np.zeros_like(heat, bool)
    cat[20:290, 70:370] = True  # the cat's head and body in scikit-image's chelsea (451x300)
    assert result.label == "Egyptian cat"
    assert heat[cat].sum() / heat.sum() > 0.8


def test_explanation_latency_is_recorded_by_method(cam, digit):
    _ask(cam, digit, method="layercam")
    text = metrics.render().decode()
    assert 'convscope_explanation_duration_seconds_count{method="layercam",model="digits"}' in text


def test_viridis_matches_matplotlib():
    import matplotlib

    reference = (matplotlib.colormaps["viridis"](np.arange(256) / 255)[:, :3] * 255).round()
    assert np.abs(viridis_lut().astype(int) - reference).max() <= 3
