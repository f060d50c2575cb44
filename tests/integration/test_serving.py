"""Classification and features through a real TorchServe over real sockets."""

from __future__ import annotations

import base64
import math

import pytest
import requests

from convscope.envelope import Payload
from tests.imaging import photo_bytes, rendered_digits

pytestmark = pytest.mark.integration


def test_ping_is_healthy(server):
    answer = requests.get(f"{server.url}/ping", headers=server.auth(), timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "Healthy"


def test_chelsea_raw_body_is_a_cat(server):
    answer = server.predict("efficientnet_lite0", data=photo_bytes("chelsea"),
                            headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "efficientnet_lite0" and len(body["predictions"]) == 5
    assert 281 <= body["predictions"][0]["class"] <= 285


def test_coffee_multipart_is_espresso(server):
    answer = server.predict("efficientnet_lite0", files={"data": ("coffee.png", photo_bytes("coffee", "PNG"))},
                            data={"top_k": "2"})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 2 and predictions[0]["class"] == 967
    assert predictions[0]["label"] == "espresso"


def test_json_base64_request(server):
    image = base64.b64encode(photo_bytes("coffee")).decode()
    answer = server.predict("efficientnet_lite0", json={"image": image, "top_k": 1})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["class"] == 967


def test_digits_outside_mnist_far_above_chance(server):
    samples = rendered_digits(count_per_digit=3, seed=7)
    correct = 0
    for digit, data in samples:
        answer = server.predict("digits", data=data, headers={"Content-Type": "image/jpeg"})
        assert answer.status_code == 200, answer.text
        correct += answer.json()["predictions"][0]["class"] == digit
    assert correct / len(samples) >= 0.6, f"{correct}/{len(samples)} (chance 10%)"


def test_features_match_the_engine_in_process(server, endpoints):
    data = photo_bytes("chelsea")
    first = server.predict("efficientnet_lite0-features", data=data, headers={"Content-Type": "image/jpeg"})
    second = server.predict("efficientnet_lite0-features", data=data, headers={"Content-Type": "image/jpeg"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["dim"] == 1280 and len(body["vector"]) == 1280 and body["layer"] == "classifier:input"
    assert math.isclose(math.fsum(v * v for v in body["vector"]), 1.0, rel_tol=1e-5)
    assert second.json()["vector"] == body["vector"]
    local = endpoints["efficientnet_lite0-features"].handle([Payload({"body": data})])[0]
    assert max(abs(a - b) for a, b in zip(body["vector"], local.vector)) < 1e-5


def test_unnormalised_features(server):
    answer = server.predict("digits-features", files={"data": ("d.jpg", rendered_digits(1)[3][1])},
                            data={"normalize": "false"})
    assert answer.status_code == 200, answer.text
    vector = answer.json()["vector"]
    assert answer.json()["dim"] == 128 and abs(math.fsum(v * v for v in vector) - 1.0) > 1e-3
