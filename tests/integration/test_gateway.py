"""The typed ``convscope.v1`` gateway against a real TorchServe: the same answers as REST and as
TorchServe's own gRPC for every endpoint (the four inspect ops included), large inputs, size
limits, status codes, deadlines, health and reflection, the pipeline stream, and model cards
whose layers are what ``op=layers`` lists."""

from __future__ import annotations

import base64
import io
import json
import struct

import grpc
import numpy as np
import pytest
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from convscope_gateway._proto import inference_pb2, inference_pb2_grpc
from convscope_gateway._proto import open_inference_grpc_pb2 as oip
from convscope_gateway._proto import open_inference_grpc_pb2_grpc as oip_grpc
from tests.imaging import held_out_digits, photo_bytes

pytestmark = pytest.mark.integration
LIMITS = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_send_message_length", 64 * 2**20)]


@pytest.fixture(scope="module")
def channels(server):
    ports = server.running.ports
    typed = grpc.insecure_channel(f"127.0.0.1:{ports['gateway_grpc']}", options=LIMITS)
    torchserve = grpc.insecure_channel(f"127.0.0.1:{ports['grpc_inference']}", options=LIMITS)
    yield typed, torchserve
    typed.close()
    torchserve.close()


@pytest.fixture(scope="module")
def token(server):
    return (("authorization", f"Bearer {server.running.keys['inference']}"),)


@pytest.fixture(scope="module")
def typed(channels, token):
    stub = pb_grpc.ConvScopeStub(channels[0])

    def call(rpc: str, request, metadata=token, timeout: float = 300):
        return getattr(stub, rpc)(request, metadata=metadata, timeout=timeout)

    return call


@pytest.fixture(scope="module")
def torchserve_grpc(channels, token):
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(channels[1])

    def call(name: str, inputs: dict[str, bytes]) -> dict:
        answer = stub.Predictions(inference_pb2.PredictionsRequest(model_name=name, input=inputs),
                                  metadata=token, timeout=300)
        return json.loads(answer.prediction)

    return call


def _rest(server, name: str, image: bytes | None, params: dict[str, str]) -> dict:
    files = {"data": ("image", image)} if image is not None else None
    answer = server.predict(name, files=files, data=params) if files else server.predict(name, json=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _digit(index: int = 4) -> bytes:
    return held_out_digits(1)[index][1]


def _explanation_equal(doc: dict, message: pb.Explanation) -> None:
    assert (message.model, message.method, message.target, message.label) == \
        (doc["model"], doc["method"], doc["target"], doc["label"])
    assert message.score == pytest.approx(doc["score"], rel=1e-6)
    assert (message.map.width, message.map.height) == (doc["width"], doc["height"])
    # Deterministic methods on the same single-item batch: identical PNG and float16 bytes.
    if "heatmap" in doc:
        assert message.map.heatmap_png == base64.b64decode(doc["heatmap"])
    if "overlay" in doc:
        assert message.map.overlay_png == base64.b64decode(doc["overlay"])
    if "array" in doc:
        assert message.map.array_f16 == base64.b64decode(doc["array"]["data"])


# (rpc, typed request, TorchServe registration, REST / TorchServe-gRPC parameters)
EXPLAIN_RENDERING = pb.Rendering(outputs=[pb.OUTPUT_HEATMAP, pb.OUTPUT_OVERLAY, pb.OUTPUT_ARRAY], alpha=0.4)
CASES = {
    "classify": ("Classify", lambda img: pb.ClassifyRequest(model="digits", image=pb.Image(data=img), top_k=3),
                 "digits", {"top_k": "3"}),
    "features": ("Features", lambda img: pb.FeaturesRequest(model="digits", image=pb.Image(data=img)),
                 "digits-features", {}),
    "saliency": ("Saliency", lambda img: pb.SaliencyRequest(
        model="digits", image=pb.Image(data=img), method=pb.SALIENCY_METHOD_SMOOTHGRAD, samples=8, noise=0.15,
        seed=7, rendering=EXPLAIN_RENDERING),
        "digits-saliency", {"method": "smoothgrad", "samples": "8", "noise": "0.15", "seed": "7",
                            "output": "heatmap,overlay,array", "alpha": "0.4"}),
    "cam": ("Cam", lambda img: pb.CamRequest(model="digits", image=pb.Image(data=img), method=pb.CAM_METHOD_GRADCAM_PP,
                                            target=3, rendering=EXPLAIN_RENDERING),
            "digits-cam", {"method": "gradcam_pp", "target": "3", "output": "heatmap,overlay,array", "alpha": "0.4"}),
    "neighbours": ("Neighbours", lambda img: pb.NeighboursRequest(model="digits", probe=pb.Probe(image=pb.Image(data=img)),
                                                                  k=5),
                   "digits-neighbours", {"k": "5"}),
    "inspect-layers": ("InspectLayers", lambda _: pb.InspectLayersRequest(model="digits"), "digits-inspect",
                       {"op": "layers"}),
    "inspect-feature_maps": ("FeatureMaps", lambda img: pb.FeatureMapsRequest(
        model="digits", image=pb.Image(data=img), layer="features.2", top=4,
        outputs=[pb.INSPECT_OUTPUT_GRID, pb.INSPECT_OUTPUT_RAW]),
        "digits-inspect", {"op": "feature_maps", "layer": "features.2", "top": "4", "output": "grid,raw"}),
    "inspect-feature_maps-channels": ("FeatureMaps", lambda img: pb.FeatureMapsRequest(
        model="digits", image=pb.Image(data=img), channels=[17, 3, 40], outputs=[pb.INSPECT_OUTPUT_ARRAY]),
        "digits-inspect", {"op": "feature_maps", "channels": "17,3,40", "output": "array"}),
    "inspect-filters": ("Filters", lambda _: pb.FiltersRequest(model="digits", outputs=[pb.INSPECT_OUTPUT_ARRAY]),
                        "digits-inspect", {"op": "filters", "output": "array"}),
    "inspect-top_examples": ("TopExamples", lambda _: pb.TopExamplesRequest(model="digits", channel=3, k=4, patches=True),
                             "digits-inspect", {"op": "top_examples", "channel": "3", "k": "4", "patches": "true"}),
}
IMAGELESS = {"inspect-layers", "inspect-filters", "inspect-top_examples"}


def _receptive_field_equal(doc: dict | None, layer: pb.LayerInfo) -> None:
    if doc is None:
        assert not layer.HasField("receptive_field"), layer.name
        return
    field = layer.receptive_field
    assert [field.size_h, field.size_w] == doc["size"] and [field.jump_h, field.jump_w] == doc["jump"], layer.name
    assert [field.start_y, field.start_x] == pytest.approx(doc["start"], abs=1e-6)
    assert getattr(field, "global") is doc["global"]


def _layers_equal(doc: dict, message) -> None:
    """``message`` (InspectLayersResponse or ModelInfo) holds the layers of REST's op=layers."""
    assert [(layer.name, layer.type, list(layer.shape), layer.stored) for layer in message.layers] == \
        [(d["name"], d["type"], d["shape"], d["stored"]) for d in doc["layers"]]
    for layer, d in zip(message.layers, doc["layers"], strict=True):
        _receptive_field_equal(d["receptive_field"], layer)
    assert (message.input_channels, message.cam_layer, message.feature_layer, message.first_conv) == \
        (doc["input"]["channels"], doc["cam_layer"], doc["feature_layer"], doc["first_conv"])
    assert list(message.stored_layers) == doc["stored_layers"]


def _float16_equal(doc: dict | None, message: pb.Float16Array, present: bool) -> None:
    assert present == (doc is not None)
    if doc is not None:
        assert doc["dtype"] == "float16" and list(message.shape) == doc["shape"]
        assert message.data == base64.b64decode(doc["data"])


def _inspect_equal(case: str, doc: dict, answer) -> None:
    """The typed answer of an inspect RPC carries exactly REST's document."""
    assert answer.model == doc["model"]
    if case != "inspect-layers":
        assert answer.layer == doc["layer"]
    if case == "inspect-layers":
        _layers_equal(doc, answer)
        assert (answer.input_height, answer.input_width, answer.note) == \
            (doc["input"]["height"], doc["input"]["width"], doc.get("note") or "")
    elif case.startswith("inspect-feature_maps"):
        assert (list(answer.shape), answer.width, answer.height) == (doc["shape"], doc["width"], doc["height"])
        assert [(c.channel, c.argmax_y, c.argmax_x) for c in answer.channels] == \
            [(c["channel"], *c["argmax"]) for c in doc["channels"]]
        assert [c.mean for c in answer.channels] == pytest.approx([c["mean"] for c in doc["channels"]], rel=1e-6)
        assert [c.max for c in answer.channels] == pytest.approx([c["max"] for c in doc["channels"]], rel=1e-6)
        assert answer.grid_png == base64.b64decode(doc.get("grid", ""))
        _float16_equal(doc.get("raw"), answer.raw, answer.HasField("raw"))
        _float16_equal(doc.get("array"), answer.array, answer.HasField("array"))
    elif case == "inspect-filters":
        assert (list(answer.shape), answer.mode, answer.shown) == (doc["shape"], doc["mode"], doc["shown"])
        assert answer.grid_png == base64.b64decode(doc.get("grid", ""))
        _float16_equal(doc.get("array"), answer.array, answer.HasField("array"))
    else:
        assert (answer.channel, answer.count) == (doc["channel"], doc["count"])
        assert [(e.id, e.label if e.HasField("label") else None, json.loads(e.metadata_json)) for e in answer.examples] == \
            [(e["id"], e.get("label"), e["metadata"]) for e in doc["examples"]]
        assert [e.activation for e in answer.examples] == pytest.approx([e["activation"] for e in doc["examples"]], rel=1e-6)
        assert [((e.position_y, e.position_x), (e.box_x0, e.box_y0, e.box_x1, e.box_y1), (e.width, e.height))
                for e in answer.examples] == \
            [(tuple(e["position"]), tuple(e["box"]), (e["width"], e["height"])) for e in doc["examples"]]
        assert [e.patch_png for e in answer.examples] == [base64.b64decode(e["patch"]) for e in doc["examples"]]


@pytest.mark.parametrize("case", list(CASES))
def test_three_transports_give_the_same_answer(server, typed, torchserve_grpc, case):
    rpc, make, name, params = CASES[case]
    image = None if case in IMAGELESS else _digit()
    over_rest = _rest(server, name, image, params)
    over_ts = torchserve_grpc(name, {**({"data": image} if image else {}), **{k: v.encode() for k, v in params.items()}})
    answer = typed(rpc, make(image))
    if case.startswith("inspect-"):
        assert over_ts == over_rest
        _inspect_equal(case, over_rest, answer)
    elif case == "classify":
        assert over_ts == over_rest
        assert [(p.class_index, p.label) for p in answer.predictions] == \
            [(p["class"], p["label"]) for p in over_rest["predictions"]]
        assert [p.score for p in answer.predictions] == pytest.approx([p["score"] for p in over_rest["predictions"]])
    elif case == "features":
        assert answer.layer == over_rest["layer"] and len(answer.vector) == over_rest["dim"]
        np.testing.assert_allclose(answer.vector, over_rest["vector"], atol=1e-6)
        np.testing.assert_allclose(over_ts["vector"], over_rest["vector"], atol=1e-6)
    elif case == "neighbours":
        ids = [n["id"] for n in over_rest["neighbours"]]
        assert [n.id for n in answer.neighbours] == ids == [n["id"] for n in over_ts["neighbours"]]
        assert [n.distance for n in answer.neighbours] == \
            pytest.approx([n["distance"] for n in over_rest["neighbours"]], abs=1e-6)
        assert [json.loads(n.metadata_json) for n in answer.neighbours] == [n["metadata"] for n in over_rest["neighbours"]]
    else:
        assert over_ts == over_rest
        _explanation_equal(over_rest, answer.explanation)


def test_index_writes_over_the_typed_api(typed):
    vector = pb.FeatureVector(values=typed("Features", pb.FeaturesRequest(model="digits", image=pb.Image(data=_digit(6)))).vector)
    added = typed("IndexAdd", pb.IndexAddRequest(model="digits", probe=pb.Probe(vector=vector), id="typed/six",
                                                 label="6", metadata_json='{"source": "typed"}'))
    assert added.id == "typed/six" and added.created
    found = typed("Neighbours", pb.NeighboursRequest(model="digits", probe=pb.Probe(vector=vector), k=1)).neighbours[0]
    assert (found.id, found.label, json.loads(found.metadata_json)) == ("typed/six", "6", {"source": "typed"})
    stats = typed("IndexStats", pb.IndexStatsRequest(model="digits"))
    assert (stats.count, stats.dim, stats.metric, stats.backend) == (added.count, 128, "cosine", "faiss")
    assert typed("IndexDelete", pb.IndexDeleteRequest(model="digits", id="typed/six")).count == added.count - 1
    with pytest.raises(grpc.RpcError) as gone:
        typed("IndexDelete", pb.IndexDeleteRequest(model="digits", id="typed/six"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def _huge_jpeg() -> bytes:
    big = Image.open(io.BytesIO(photo_bytes("chelsea"))).convert("RGB").resize((4000, 3000), Image.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_a_4000x3000_jpeg_through_every_transport(server, typed, torchserve_grpc, channels, token):
    image = _huge_jpeg()
    params = {"method": "gradcam", "output": "heatmap,overlay,array"}
    over_rest = _rest(server, "efficientnet_lite0-cam", image, params)
    over_ts = torchserve_grpc("efficientnet_lite0-cam", {"data": image, **{k: v.encode() for k, v in params.items()}})
    answer = typed("Cam", pb.CamRequest(model="efficientnet_lite0", image=pb.Image(data=image),
                                        method=pb.CAM_METHOD_GRADCAM, rendering=pb.Rendering(
                                            outputs=[pb.OUTPUT_HEATMAP, pb.OUTPUT_OVERLAY, pb.OUTPUT_ARRAY])))
    assert over_ts == over_rest
    _explanation_equal(over_rest, answer.explanation)
    # Downscaled to max_output_side (1024) with the aspect kept: 1024 x 768.
    assert (answer.explanation.map.width, answer.explanation.map.height) == (1024, 768)
    assert len(answer.explanation.map.array_f16) == 1024 * 768 * 2
    top = typed("Classify", pb.ClassifyRequest(model="efficientnet_lite0", image=pb.Image(data=image), top_k=1))
    over_rest = _rest(server, "efficientnet_lite0", image, {"top_k": "1"})["predictions"][0]["class"]
    assert top.predictions[0].class_index == over_rest
    # ... and OIP v2 gRPC, the image as one length-prefixed BYTES element.
    infer = oip_grpc.GRPCInferenceServiceStub(channels[0]).ModelInfer(oip.ModelInferRequest(
        model_name="efficientnet_lite0", parameters={"top_k": oip.InferParameter(int64_param=1)},
        inputs=[oip.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])],
        raw_input_contents=[struct.pack("<I", len(image)) + image]), metadata=token, timeout=300)
    classes = dict(zip([o.name for o in infer.outputs], infer.raw_output_contents))["classes"]
    assert struct.unpack("<q", classes) == (over_rest,)


def test_an_over_limit_request_is_resource_exhausted(server, typed):
    too_big = b"\xff\xd8\xff" + b"\0" * (11 * 2**20)
    with pytest.raises(grpc.RpcError) as refused:
        typed("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=too_big)))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert server.predict("digits", data=too_big, headers={"Content-Type": "image/jpeg"}).status_code == 413


def _trailing(error: grpc.RpcError) -> dict[str, str]:
    return dict(error.trailing_metadata() or ())


@pytest.mark.parametrize("call, code, error_type", [
    (lambda t: t("Classify", pb.ClassifyRequest(model="no-such-model", image=pb.Image(data=b"x"))),
     grpc.StatusCode.NOT_FOUND, "ModelNotFoundException"),
    (lambda t: t("Saliency", pb.SaliencyRequest(model="digits", image=pb.Image(data=_digit()), method=99)),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=b"not an image"))),
     grpc.StatusCode.INVALID_ARGUMENT, "InvalidImage"),
    (lambda t: t("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit())), metadata=()),
     grpc.StatusCode.UNAUTHENTICATED, "InvalidKeyException"),
    (lambda t: t("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit())),
                 metadata=(("authorization", "Bearer wrong"),)),
     grpc.StatusCode.UNAUTHENTICATED, "InvalidKeyException"),
    (lambda t: t("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit()), top_k=0)),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("FeatureMaps", pb.FeatureMapsRequest(model="digits", image=pb.Image(data=_digit()), layer="no_such_layer")),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("Filters", pb.FiltersRequest(model="digits", layer="features.1")),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("TopExamples", pb.TopExamplesRequest(model="digits", channel=128)),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("TopExamples", pb.TopExamplesRequest(model="digits", layer="features.2", channel=64)),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("FeatureMaps", pb.FeatureMapsRequest(model="digits", image=pb.Image(data=_digit()), channels=[3, 128])),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
    (lambda t: t("TopExamples", pb.TopExamplesRequest(model="digits")),
     grpc.StatusCode.INVALID_ARGUMENT, "BadRequest"),
], ids=["unknown-model", "bad-enum", "bad-image", "no-token", "wrong-token", "top_k-0", "inspect-unknown-layer",
        "filters-not-a-conv", "top-examples-channel-out-of-range", "second-stored-layer-channel-out-of-range",
        "feature-maps-channel-out-of-range", "top-examples-without-channel"])
def test_errors_have_their_status_codes(typed, call, code, error_type):
    with pytest.raises(grpc.RpcError) as failed:
        call(typed)
    assert failed.value.code() == code, failed.value.details()
    assert _trailing(failed.value)["convscope-error-type"] == error_type
    assert failed.value.details()  # a message that says what was wrong


def test_an_expired_deadline_is_deadline_exceeded(typed):
    request = pb.CamRequest(model="efficientnet_lite0", image=pb.Image(data=photo_bytes("chelsea")),
                            method=pb.CAM_METHOD_SCORECAM)
    with pytest.raises(grpc.RpcError) as late:
        typed("Cam", request, timeout=0.05)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_the_pipeline_answers_every_request_by_key(typed):
    digits = held_out_digits(1)
    requests_ = [pb.PipelineRequest(key=f"c{label}", classify=pb.ClassifyRequest(model="digits", image=pb.Image(data=png)))
                 for label, png in digits]
    requests_.insert(3, pb.PipelineRequest(key="bad", classify=pb.ClassifyRequest(model="digits", image=pb.Image(data=b"??"))))
    requests_.append(pb.PipelineRequest(key="cam", cam=pb.CamRequest(model="digits", image=pb.Image(data=digits[0][1]))))
    answers = {a.key: a for a in typed("Pipeline", iter(requests_))}
    assert set(answers) == {r.key for r in requests_}
    assert answers["bad"].WhichOneof("answer") == "error" and answers["bad"].error.type == "InvalidImage"
    assert answers["bad"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for label, _ in digits:
        assert answers[f"c{label}"].classify.predictions[0].class_index == label
    assert answers["cam"].cam.explanation.method == "gradcam"


def test_models_are_listed_and_described(typed):
    models = {m.model: m for m in typed("ListModels", pb.ListModelsRequest()).models}
    assert set(models) == {"digits", "efficientnet_lite0"}
    assert (models["digits"].num_classes, models["digits"].feature_dim) == (10, 128)
    lite = typed("ModelMetadata", pb.ModelMetadataRequest(model="efficientnet_lite0")).info
    assert (lite.feature_dim, lite.input_height, lite.input_width) == (1280, 224, 224)
    assert list(lite.endpoints) == ["classify", "features", "saliency", "cam", "neighbours", "inspect"]


@pytest.mark.parametrize("model", ["digits", "efficientnet_lite0"])
def test_model_metadata_carries_the_layers_that_op_layers_lists(server, typed, model):
    """The card's layers (built into the archive) are the serving endpoint's own op=layers:
    the same names, shapes, stored flags and receptive fields."""
    over_rest = _rest(server, f"{model}-inspect", None, {"op": "layers"})
    info = typed("ModelMetadata", pb.ModelMetadataRequest(model=model)).info
    assert len(info.layers) > 10 and any(layer.stored for layer in info.layers)
    _layers_equal(over_rest, info)
    assert (info.input_height, info.input_width) == (over_rest["input"]["height"], over_rest["input"]["width"])
    listed = {m.model: m for m in typed("ListModels", pb.ListModelsRequest()).models}
    assert listed[model] == info


def test_health_reports_serving_per_model(channels):
    import time

    stub = health_pb2_grpc.HealthStub(channels[0])
    names = ["", "convscope.v1.ConvScope", "inference.GRPCInferenceService", "digits", "efficientnet_lite0",
             "digits-cam", "efficientnet_lite0-neighbours", "digits-inspect"]
    deadline = time.monotonic() + 30
    while True:  # the gateway polls readiness every second
        states = {n: stub.Check(health_pb2.HealthCheckRequest(service=n), timeout=5).status for n in names}
        if all(s == health_pb2.HealthCheckResponse.SERVING for s in states.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert all(s == health_pb2.HealthCheckResponse.SERVING for s in states.values()), states
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Check(health_pb2.HealthCheckRequest(service="no-such-model"), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_services(channels):
    stub = reflection_pb2_grpc.ServerReflectionStub(channels[0])
    listed = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    services = {s.name for s in listed.list_services_response.service}
    assert {"convscope.v1.ConvScope", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services
    found = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="convscope.v1.ConvScope")]), timeout=10))
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in found.file_descriptor_response.file_descriptor_proto]
    service = next(s for f in files if f.package == "convscope.v1" for s in f.service if s.name == "ConvScope")
    assert {"Classify", "Saliency", "Cam", "Neighbours", "Pipeline"} <= {m.name for m in service.method}


def _gateway_metrics(server) -> dict[tuple[str, tuple], float]:
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{server.running.ports['gateway_http']}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_gateway_counts_calls_by_status_and_reports_readiness(server, typed):
    import time

    def count(method: str, code: str) -> float:
        key = ("convscope_gateway_requests_total",
               (("code", code), ("method", method), ("service", "convscope.v1.ConvScope")))
        return _gateway_metrics(server).get(key, 0.0)

    ok, missing = count("Classify", "OK"), count("Classify", "NOT_FOUND")
    typed("Classify", pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit())))
    with pytest.raises(grpc.RpcError):
        typed("Classify", pb.ClassifyRequest(model="nope", image=pb.Image(data=_digit())))
    assert (count("Classify", "OK"), count("Classify", "NOT_FOUND")) == (ok + 1, missing + 1)
    deadline = time.monotonic() + 30
    while True:
        samples = _gateway_metrics(server)
        ready = {dict(labels)["endpoint"]: v for (name, labels), v in samples.items()
                 if name == "convscope_registration_ready" and dict(labels)["model"] == "digits"}
        if set(ready.values()) == {1.0} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ready == {e: 1.0 for e in ("classify", "features", "saliency", "cam", "neighbours", "inspect")}
    assert any(name == "convscope_gateway_request_duration_seconds_count" and dict(labels)["method"] == "Classify"
               for name, labels in samples)
