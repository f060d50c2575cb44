"""Saliency and CAM through a real TorchServe: every method on both built-in models, PNGs of
the client image's size, mixed batches, the explanation histogram on the metrics endpoint."""

from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from convscope.envelope import Payload
from convscope.explain import CAM, SALIENCY
from tests.imaging import held_out_digits, photo_bytes, rendered_digits

pytestmark = pytest.mark.integration

# Light settings so that the whole matrix runs in reasonable time on two cores.
LIGHT = {"smoothgrad": {"samples": "4"}, "integrated_gradients": {"steps": "8"},
         "occlusion": {"window": {"digits": "7", "efficientnet_lite0": "56"}, "stride": None}}
IMAGES = {"digits": lambda: rendered_digits(1)[5][1], "efficientnet_lite0": lambda: photo_bytes("chelsea")}
SIZES = {"digits": (200, 200), "efficientnet_lite0": (451, 300)}


def _fields(model: str, method: str) -> dict:
    fields = {"method": method, "output": "heatmap,overlay,array"}
    for key, value in LIGHT.get(method, {}).items():
        if isinstance(value, dict):
            fields[key] = value[model]
        elif value is not None:
            fields[key] = value
    return fields


def _decode_png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.mark.parametrize("model", ["digits", "efficientnet_lite0"])
@pytest.mark.parametrize("endpoint, method", [("saliency", m) for m in SALIENCY] + [("cam", m) for m in CAM])
def test_every_method_answers_with_maps_of_the_client_image_size(server, model, endpoint, method):
    answer = server.predict(f"{model}-{endpoint}", files={"data": ("image", IMAGES[model]())},
                            data=_fields(model, method), timeout=600)
    if model == "digits" and method == "cam":  # digits' head has a dense layer after pooling
        assert answer.status_code == 400 and "global-average-pool + linear" in answer.json()["message"]
        return
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == method and body["model"] == model
    assert (body["width"], body["height"]) == SIZES[model]
    heatmap, overlay = _decode_png(body["heatmap"]), _decode_png(body["overlay"])
    assert heatmap.format == "PNG" and heatmap.mode == "L" and heatmap.size == SIZES[model]
    assert overlay.mode == "RGB" and overlay.size == SIZES[model]
    array = np.frombuffer(base64.b64decode(body["array"]["data"]), dtype="<f2")
    assert body["array"]["dtype"] == "float16" and array.size == SIZES[model][0] * SIZES[model][1]
    assert 0 <= body["target"] < (10 if model == "digits" else 1000) and 0 < body["score"] <= 1


def test_chelsea_gradcam_for_285_is_on_the_cat(server):
    answer = server.predict("efficientnet_lite0-cam", files={"data": photo_bytes("chelsea")},
                            data={"method": "gradcam", "target": "285"})
    assert answer.status_code == 200, answer.text
    heat = np.asarray(_decode_png(answer.json()["heatmap"]), dtype=np.float64)
    cat = np.zeros_like(heat, bool)
    cat[20:290, 70:370] = True
    assert answer.json()["label"] == "Egyptian cat" and heat[cat].sum() / heat.sum() > 0.8


def test_a_batch_of_mixed_methods_and_targets_answers_each_item(server, endpoints):
    digit = rendered_digits(1)[2][1]
    asks = [{"method": "gradcam", "target": "2"}, {"method": "layercam", "target": "7"},
            {"method": "gradcam_pp"}, {"method": "nonsense"}, {"method": "scorecam", "target": "0"},
            {"method": "gradcam", "target": "9"}]
    with ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda f: server.predict("digits-cam", files={"data": digit}, data=f), asks))
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 200, 200], [a.text[:200] for a in answers]
    local = endpoints["digits-cam"] if "digits-cam" in endpoints else None
    for ask, answer in zip(asks, answers):
        if answer.status_code != 200:
            continue
        body = answer.json()
        assert body["method"] == ask["method"]
        if "target" in ask:
            assert body["target"] == int(ask["target"])
        alone = local.handle([Payload({"data": digit, **{k: v.encode() for k, v in ask.items()}})])[0]
        assert body["target"] == alone.target
        served = np.asarray(_decode_png(body["heatmap"]), dtype=int)
        assert np.abs(served - np.asarray(Image.open(io.BytesIO(alone.heatmap)), dtype=int)).max() <= 2


def test_bad_explanation_requests_are_400_over_rest(server):
    digit = rendered_digits(1)[2][1]
    for fields, words in [({"method": "gradcam", "layer": "nope"}, "no layer"),
                          ({"method": "gradcam", "target": "10"}, "between 0 and 9")]:
        answer = server.predict("digits-cam", files={"data": digit}, data=fields)
        assert answer.status_code == 400 and words in answer.json()["message"]
    answer = server.predict("digits-saliency", files={"data": digit}, data={"method": "smoothgrad", "samples": "999999"})
    assert answer.status_code == 400 and "max_samples" in answer.json()["message"]


def test_the_explanation_histogram_is_on_the_metrics_endpoint(server):
    server.predict("digits-cam", files={"data": rendered_digits(1)[1][1]}, data={"method": "gradcam"})
    text = requests.get(server.metrics_url, timeout=10).text
    assert 'convscope_explanation_duration_seconds_bucket{le="0.001",method="gradcam",model="digits"}' in text
    assert 'convscope_explanation_duration_seconds_bucket{le="120.0",method="gradcam",model="digits"}' in text
    assert "convscope_request_duration_seconds_count" in text


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_add_up_across_worker_processes(server):
    """digits-features runs two worker processes: their counts are summed, none lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor

    assert len([w for w in server.workers("digits-features") if w["status"] == "READY"]) == 2
    before = requests.get(server.metrics_url, timeout=10).text
    digits = [png for _, png in held_out_digits(2)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda png: server.predict("digits-features", files={"data": png}), digits * 2))
    assert all(a.status_code == 200 for a in answers)
    after = requests.get(server.metrics_url, timeout=10).text
    name = "convscope_request_duration_seconds_count"
    assert _sample(after, name, model="digits", endpoint="features") - \
        _sample(before, name, model="digits", endpoint="features") == len(answers)
    # Both processes' start counters survive in the shared files (a restart would add to them).
    assert _sample(after, "convscope_worker_starts_total", model="digits", endpoint="features") >= 2
