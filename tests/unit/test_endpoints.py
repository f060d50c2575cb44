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
