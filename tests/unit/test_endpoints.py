"""The engine's endpoints in-process, on the real built-in models."""

from __future__ import annotations

import math

import torch

from convscope import metrics
from convscope.envelope import Payload
from convscope.errors import InvalidImage, ServiceError
from convscope.preprocess import decode_image, to_tensor
from tests.imaging import photo_bytes


def _raw(data: bytes) -> Payload:
    return Payload({"body": data}, {"body": "image/jpeg"})


def test_chelsea_is_a_cat_and_coffee_is_espresso(endpoints):
    cat, coffee = endpoints["efficientnet_lite0"].handle(
        [_raw(photo_bytes("chelsea")), _raw(photo_bytes("coffee", "PNG"))])
    assert 281 <= cat.predictions[0].class_index <= 285
    assert coffee.predictions[0].class_index == 967 and coffee.predictions[0].label == "espresso"
    scores = [p.score for p in cat.predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001


def test_each_item_gets_its_own_top_k_and_a_bad_item_fails_alone(endpoints):
    payloads = [Payload({"data": photo_bytes("chelsea"), "top_k": b"1"}),
                _raw(b"definitely not an image"),
                Payload({"data": photo_bytes("coffee"), "top_k": b"3"}),
                Payload({"data": photo_bytes("coffee"), "top_k": b"0"})]
    one, bad, three, zero = endpoints["efficientnet_lite0"].handle(payloads)
    assert len(one.predictions) == 1 and len(three.predictions) == 3
    assert isinstance(bad, InvalidImage) and bad.status == 400
    assert isinstance(zero, ServiceError) and "top_k" in zero.message


def test_features_are_unit_norm_and_deterministic(endpoints, lite0):
    endpoint = endpoints["efficientnet_lite0-features"]
    first, second = endpoint.handle([_raw(photo_bytes("chelsea"))] * 2)
    assert first.dim == 1280 and first.layer == "classifier:input"
    assert math.isclose(sum(v * v for v in first.vector), 1.0, rel_tol=1e-5)
    assert first.vector == second.vector


def test_unnormalised_features_are_the_pooled_embedding(endpoints, lite0):
    result = endpoints["efficientnet_lite0-features"].handle(
        [Payload({"data": photo_bytes("chelsea"), "normalize": b"false"})])[0]
    image = decode_image(photo_bytes("chelsea"), endpoints["efficientnet_lite0"].config).image
    x = to_tensor(image, lite0.spec.input)[None]
    with torch.inference_mode():
        expected = lite0.module.forward_head(lite0.module.forward_features(x), pre_logits=True)[0]
    assert torch.allclose(torch.tensor(result.vector), expected, atol=1e-4)


def test_digits_features_are_128_dim(endpoints):
    from tests.imaging import rendered_digits

    result = endpoints["digits-features"].handle([_raw(rendered_digits(1)[0][1])])[0]
    assert result.dim == 128 and result.layer == "fc:input"


def test_endpoint_metrics_are_recorded(endpoints):
    endpoints["digits"].handle([_raw(b"junk")])
    text = metrics.render().decode()
    assert 'convscope_errors_total{endpoint="classify",model="digits",type="InvalidImage"}' in text
    assert 'convscope_request_duration_seconds_bucket{endpoint="classify",le="0.001",model="digits"}' in text
    assert "convscope_explanation_duration_seconds" in text


def test_no_hooks_survive_a_features_call(endpoints, lite0):
    endpoints["efficientnet_lite0-features"].handle([_raw(photo_bytes("coffee"))])
    assert not any(m._forward_hooks for m in lite0.module.modules())


def _large_jpegs() -> list[bytes]:
    from PIL import Image

    from tests.imaging import encode, photo
    sizes = {"chelsea": (1920, 1080), "coffee": (4000, 3000), "astronaut": (1600, 1600),
             "rocket": (1200, 1800)}
    return [encode(Image.fromarray(photo(n)).resize(s, Image.Resampling.BICUBIC), "JPEG", quality=92)
            for n, s in sizes.items()]


def test_large_jpegs_are_decoded_reduced_and_classify_as_in_full(endpoints, lite0):
    """Classification decodes a large JPEG at 1/2-1/8 scale (libjpeg DCT scaling): the same
    top-1 and near-identical scores and features as decoding every pixel."""
    from convscope.endpoints.classify import embed
    from convscope.preprocess import prepare_input, reduced_decode_size

    config, spec = endpoints["efficientnet_lite0"].config, lite0.spec.input
    floor = reduced_decode_size(spec)
    for data in _large_jpegs():
        full = decode_image(data, config).image
        reduced = decode_image(data, config, reduce_to=floor).image
        assert reduced.width < full.width and min(reduced.size) >= floor[0], (full.size, reduced.size)
        inputs = torch.stack([prepare_input(full, spec)[0], prepare_input(reduced, spec)[0]])
        with torch.inference_mode():
            probs = lite0.module(inputs).softmax(dim=1)
        assert probs[0].argmax() == probs[1].argmax()
        assert (probs[0] - probs[1]).abs().max() < 0.03  # measured: 0.002-0.016
        vectors = torch.nn.functional.normalize(embed(lite0, inputs), dim=1)
        assert float(vectors[0] @ vectors[1]) > 0.99
        served = endpoints["efficientnet_lite0"].handle([_raw(data)])[0]
        assert served.predictions[0].class_index == int(probs[1].argmax())


def test_png_and_small_jpegs_and_digits_are_never_reduced(endpoints, lite0):
    from convscope.preprocess import reduced_decode_size

    config, floor = endpoints["efficientnet_lite0"].config, reduced_decode_size(lite0.spec.input)
    png = decode_image(photo_bytes("astronaut", "PNG"), config, reduce_to=(8, 8)).image
    assert png.size == (512, 512)
    small = decode_image(photo_bytes("chelsea"), config, reduce_to=floor).image
    assert small.size == (451, 300)
    assert reduced_decode_size(endpoints["digits"].model.spec.input) is None  # mnist crops the ink first


def test_explanations_decode_the_client_image_in_full(endpoints):
    """Overlays and maps are drawn on the client's image: it is never reduced there."""
    data = _large_jpegs()[0]
    cam = endpoints["efficientnet_lite0-cam"]
    request = cam.parse(_raw(data))
    assert cam.prepare(request).image.size == (1920, 1080)
    assert endpoints["efficientnet_lite0"].prepare(endpoints["efficientnet_lite0"].parse(_raw(data))).image.size == (960, 540)
