"""``<m>-inspect`` through a real TorchServe: every op over REST (multipart, JSON) and TorchServe's
gRPC with the same answers, the top-activation store kept in step with ``<m>-neighbours`` adds
and deletes, and acknowledged adds still found by ``top_examples`` after SIGKILLs of the
store-owning worker and a full restart."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import zipfile

import grpc
import pytest
import requests

from convscope.serving import start
from convscope_gateway._proto import inference_pb2, inference_pb2_grpc
from tests.chaos import NeighboursClient
from tests.imaging import photo_bytes

pytestmark = pytest.mark.integration


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def ts_grpc(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.running.ports['grpc_inference']}")
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel)
    token = [("authorization", f"Bearer {server.running.keys['inference']}")]

    def predict(name: str, inputs: dict[str, bytes]) -> dict:
        answer = stub.Predictions(inference_pb2.PredictionsRequest(model_name=name, input=inputs),
                                  metadata=token, timeout=120)
        return json.loads(answer.prediction)

    yield predict
    channel.close()


def test_layers_over_rest_match_the_model_card_fields(server, store):
    answer = server.predict("efficientnet_lite0-inspect", json={"op": "layers"})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    names = [layer["name"] for layer in doc["layers"]]
    assert doc["cam_layer"] == "bn2" and names[-2:] == ["bn2", "global_pool.pool"]
    assert doc["first_conv"] == "conv_stem" and doc["stored_layers"] == ["bn2", "blocks.4"]
    field = doc["layers"][names.index("bn2")]["receptive_field"]
    assert field == {"size": [851, 851], "jump": [32, 32], "start": [31.0, 31.0], "global": False}
    assert doc["layers"][-1]["receptive_field"]["global"] is True
    with zipfile.ZipFile(store / "efficientnet_lite0.mar") as archive:
        assert json.loads(archive.read("card.json"))["layers"] == doc["layers"]


@pytest.mark.parametrize("params", [
    {"op": "feature_maps", "layer": "blocks.4", "top": "4", "output": "grid,raw"},
    {"op": "filters", "output": "array"},
    {"op": "top_examples", "channel": "7", "k": "3", "patches": "true"},
], ids=lambda p: p["op"])
def test_rest_and_torchserve_grpc_give_the_same_answer(server, ts_grpc, params):
    image = photo_bytes("chelsea") if params["op"] == "feature_maps" else None
    files = {"data": ("image", image)} if image else None
    rest = server.predict("efficientnet_lite0-inspect", files=files, data=params) if image else \
        server.predict("efficientnet_lite0-inspect", json=params)
    assert rest.status_code == 200, rest.text
    inputs = {k: v.encode() for k, v in params.items()}
    if image:
        inputs["data"] = image
    assert ts_grpc("efficientnet_lite0-inspect", inputs) == rest.json()


def test_top_examples_of_the_photo_gallery_come_with_patches(server):
    answer = server.predict("efficientnet_lite0-inspect", json={"op": "top_examples", "channel": 100, "k": 4,
                                                                "patches": True})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["count"] == 72 and len(doc["examples"]) == 4
    values = [e["activation"] for e in doc["examples"]]
    assert values == sorted(values, reverse=True)
    for example in doc["examples"]:
        x0, y0, x1, y1 = example["box"]
        assert 0 <= x0 < x1 <= example["width"] and 0 <= y0 < y1 <= example["height"]
        assert base64.b64decode(example["patch"])[:4] == b"\x89PNG"


@pytest.mark.parametrize("doc, status, words", [
    ({"op": "feature_maps", "layer": "nope"}, 400, "valid layers"),
    ({"op": "top_examples", "channel": 5000}, 400, "out of range"),
    ({"op": "top_examples", "channel": 1, "k": 1000}, 400, "max_top_examples"),
    ({"op": "layers", "channel": 1}, 400, "do not apply"),
])
def test_bad_requests_are_4xx_with_a_message(server, doc, status, words):
    if doc["op"] == "feature_maps":
        doc = {**doc, "image": _b64(photo_bytes("coffee"))}
    answer = server.predict("efficientnet_lite0-inspect", json=doc)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["message"]


@pytest.fixture(scope="module")
def digits_only(store, tmp_path_factory):
    only = tmp_path_factory.mktemp("digits-inspect-store")
    (only / "digits.mar").symlink_to((store / "digits.mar").resolve())
    return only


def _inspect(running, doc: dict) -> requests.Response:
    return requests.post(f"{running.url()}/predictions/digits-inspect", json=doc, timeout=60,
                         headers={"Authorization": f"Bearer {running.keys['inference']}"})


def _found(running, channel: int, k: int) -> set[str]:
    answer = _inspect(running, {"op": "top_examples", "layer": "features", "channel": channel, "k": k})
    assert answer.status_code == 200, answer.text
    return {e["id"] for e in answer.json()["examples"]}


def _champion(running, channel: int) -> bytes:
    """The training digit that most excites ``channel``, as PNG bytes: copies of it tie for first."""
    from tests.unit.test_inspect import _digit_png

    answer = _inspect(running, {"op": "top_examples", "layer": "features", "channel": channel, "k": 1})
    return _digit_png(answer.json()["examples"][0]["metadata"]["row"])


def test_acknowledged_adds_are_top_examples_after_kills_and_a_restart(digits_only, tmp_path):
    channel, running = 11, start(digits_only, tmp_path)
    client = NeighboursClient(running)
    acked, image = [], None
    try:
        image = _champion(running, channel)
        for cycle in range(4):
            pid = int(client.worker()["pid"])
            for i in range(3):
                key = f"kill/{cycle}-{i}"
                answer = client.call({"op": "add", "id": key, "label": "copy", "image": _b64(image)})
                if answer.status_code == 200:
                    acked.append(key)
            os.kill(pid, signal.SIGKILL)
            client.wait_for_new_worker(pid, time.monotonic())
            assert set(acked) <= _found(running, channel, len(acked) + 1)
        gone = acked.pop()
        assert client.call({"op": "delete", "id": gone}).status_code == 200
        assert gone not in _found(running, channel, len(acked) + 2)
    finally:
        running.stop()
    again = start(digits_only, tmp_path)
    try:
        found = _found(again, channel, len(acked) + 2)
        assert set(acked) <= found and gone not in found
    finally:
        again.stop()


def test_inspect_metrics_are_on_the_metrics_endpoint(server):
    assert server.predict("digits-inspect", json={"op": "layers"}).status_code == 200
    text = requests.get(server.metrics_url, timeout=10).text
    assert 'convscope_inspect_duration_seconds_count{model="digits",op="layers"}' in text
    assert 'convscope_activation_store_entries{model="digits"}' in text
