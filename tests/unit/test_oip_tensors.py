"""OIP v2 tensors on the wire (convscope_gateway.tensors) and the transport-free protocol
(convscope_gateway.oip.Oip) over a fake TorchServe: layouts, the REST binary extension, and a
clear 400 for every malformed request."""

from __future__ import annotations

import asyncio
import json
import struct

import grpc
import pytest

from convscope_gateway._proto import open_inference_grpc_pb2 as pb
from convscope_gateway.catalog import Catalog, ModelCard
from convscope_gateway.errors import GatewayError
from convscope_gateway.oip import (InferRequest, Oip, Target, _grpc_request, _rest_request, binary_outputs,
                                   rest_answer)
from convscope_gateway.tensors import (MAX_BATCH, Input, Tensor, build_body, decode_bytes, decode_raw,
                                       encode_bytes, encode_raw, image_batch, rest_inputs, split_body)

JPEGS = [b"\xff\xd8first", b"\xff\xd8second image", b""]


def _bad(call, *fragments: str) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        call()
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.http_status == 400, error
    for fragment in fragments:
        assert fragment in error.message, error.message
    return error


# Raw layouts ------------------------------------------------------------------------------------

def test_bytes_length_prefix_round_trip():
    raw = encode_bytes(JPEGS)
    assert raw[:4] == struct.pack("<I", len(JPEGS[0])) and raw[4:4 + len(JPEGS[0])] == JPEGS[0]
    assert len(raw) == sum(4 + len(e) for e in JPEGS)
    assert decode_bytes(raw) == JPEGS
    assert decode_bytes(b"") == []


def test_fp32_and_int64_raw_layout_is_row_major_little_endian():
    scores = Tensor("scores", "FP32", (2, 2), (0.5, 0.25, 1.0, -2.0))
    assert encode_raw(scores) == struct.pack("<4f", 0.5, 0.25, 1.0, -2.0)
    assert decode_raw("FP32", encode_raw(scores)) == [0.5, 0.25, 1.0, -2.0]
    classes = Tensor("classes", "INT64", (1, 3), (285, 282, 2**40))
    raw = encode_raw(classes)
    assert raw == struct.pack("<3q", 285, 282, 2**40) and raw[:8] == (285).to_bytes(8, "little")
    assert decode_raw("INT64", raw) == [285, 282, 2**40]
    labels = Tensor("labels", "BYTES", (1, 2), (b"Egyptian cat", b"tabby, tabby cat"))
    assert decode_raw("BYTES", encode_raw(labels)) == list(labels.data)


def test_tensor_shape_must_match_its_data():
    with pytest.raises(ValueError, match="holds 4 elements"):
        Tensor("scores", "FP32", (2, 2), (1.0,))


def test_truncated_length_prefix_and_element_are_clear_errors():
    raw = encode_bytes(JPEGS[:2])
    _bad(lambda: decode_bytes(raw + b"\x01\x00"), "truncated length prefix", "element 2")
    _bad(lambda: decode_bytes(raw[:-3]), "element 1 declares 14 bytes but only 11 remain")
    _bad(lambda: decode_raw("FP32", b"\x00" * 6), "not a whole number of 4-byte elements")


# The image input -----------------------------------------------------------------------------------

def test_image_batch_from_raw_elements_and_n_by_1():
    assert image_batch([Input("image", "BYTES", (3,), raw=encode_bytes(JPEGS))]) == JPEGS
    assert image_batch([Input("image", "BYTES", (2, 1), elements=tuple(JPEGS[:2]))]) == JPEGS[:2]


@pytest.mark.parametrize("inputs, fragments", [
    ([], ("exactly one input", "'image'", "none")),
    ([Input("data", "BYTES", (1,), elements=(b"x",))], ("exactly one input", "['data']")),
    ([Input("image", "BYTES", (1,), elements=(b"x",)), Input("top_k", "INT64", (1,), raw=b"")],
     ("['image', 'top_k']",)),
    ([Input("image", "UINT8", (1,), raw=b"x")], ("must be BYTES", "'UINT8'")),
    ([Input("image", "BYTES", (1, 224, 224), raw=b"")], ("shape [N] or [N, 1]", "[1, 224, 224]")),
    ([Input("image", "BYTES", (2,), raw=encode_bytes(JPEGS))], ("shape [2] (2 elements) but carries 3",)),
    ([Input("image", "BYTES", (3,), elements=(b"a",))], ("carries 1",)),
    ([Input("image", "BYTES", (0,), elements=())], ("1 to 64 images, not 0",)),
    ([Input("image", "BYTES", (MAX_BATCH + 1,), raw=b"")], (f"not {MAX_BATCH + 1}",)),
    ([Input("image", "BYTES", (1,))], ("carry its data once",)),
    ([Input("image", "BYTES", (1,), raw=b"\x05\x00")], ("truncated length prefix",)),
])
def test_malformed_image_input(inputs, fragments):
    _bad(lambda: image_batch(inputs), *fragments)


# REST binary tensor extension -----------------------------------------------------------------------

def _request_body(images: list[bytes], **extra) -> tuple[bytes, int]:
    """What tritonclient.http sends: JSON, then the input's length-prefixed raw bytes."""
    raw = encode_bytes(images)
    doc = {"inputs": [{"name": "image", "shape": [len(images)], "datatype": "BYTES",
                       "parameters": {"binary_data_size": len(raw)}}],
           "parameters": {"binary_data_output": True}, **extra}
    header = json.dumps(doc).encode()
    return header + raw, len(header)


def test_binary_extension_request_parsing():
    body, length = _request_body(JPEGS)
    doc, binary = split_body(body, str(length))
    assert doc["parameters"] == {"binary_data_output": True} and binary == encode_bytes(JPEGS)
    (image,) = rest_inputs(doc, binary)
    assert (image.name, image.datatype, image.shape, image.raw) == ("image", "BYTES", (3,), binary)
    request = _rest_request(doc, binary)
    assert request.images == JPEGS and request.outputs is None and request.id == ""


def test_json_data_bytes_are_utf8_strings():
    doc = {"id": "7", "inputs": [{"name": "image", "shape": [2, 1], "datatype": "BYTES", "data": [["ab"], ["é"]]}],
           "outputs": [{"name": "scores"}]}
    request = _rest_request(*split_body(json.dumps(doc).encode(), None))
    assert request.images == [b"ab", "é".encode()] and request.id == "7" and request.outputs == [("scores", {})]


@pytest.mark.parametrize("body, header, fragments", [
    (b"{not json", None, ("not valid JSON",)),
    (b"[1, 2]", None, ("must be an object",)),
    (b'{"inputs": []}', "99", ("Inference-Header-Content-Length", "0 to 14", "'99'")),
    (b'{"inputs": []}', "x", ("'x'",)),
])
def test_malformed_rest_body(body, header, fragments):
    _bad(lambda: split_body(body, header), *fragments)


@pytest.mark.parametrize("inputs, binary, fragments", [
    (None, b"", ("needs 'inputs'",)),
    ([{"name": "image", "datatype": "BYTES", "shape": [1]}], b"", ("no 'data' and no parameters.binary_data_size",)),
    ([{"name": "image", "datatype": "BYTES", "shape": [1], "data": [1]}], b"",
     ("must be strings", "binary tensor extension")),
    ([{"name": "image", "datatype": "BYTES", "shape": [-1], "data": ["a"]}], b"", ("non-negative integers", "[-1]")),
    ([{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}], b"1234",
     ("runs past the end", "4 binary bytes left")),
    ([{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 2}}], b"1234",
     ("2 binary bytes that no input",)),
    ([{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 0}, "data": ["a"]}], b"",
     ("both 'data' and binary_data_size",)),
    ([{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"shared_memory_region": "r"}}], b"",
     ("unsupported parameters ['shared_memory_region']",)),
    ([{"name": 3, "datatype": "BYTES", "shape": [1]}], b"", ("input 0", "must be strings")),
])
def test_malformed_rest_inputs(inputs, binary, fragments):
    _bad(lambda: rest_inputs({"inputs": inputs}, binary), *fragments)


def test_binary_extension_response_building():
    scores = Tensor("scores", "FP32", (1, 2), (0.75, 0.25))
    labels = Tensor("labels", "BYTES", (1, 2), (b"cat", b"dog"))
    body, length = build_body({"outputs": []}, [encode_raw(scores), encode_raw(labels)])
    assert json.loads(body[:length]) == {"outputs": []}
    assert body[length:] == struct.pack("<2f", 0.75, 0.25) + encode_bytes([b"cat", b"dog"])


def _parse_answer(response) -> tuple[dict, dict[str, list]]:
    """Decode a REST answer the way tritonclient.http does."""
    body = response.body
    length = response.headers.get("Inference-Header-Content-Length")
    doc = json.loads(body[:int(length)] if length else body)
    buffer, offset, values = body[int(length):] if length else b"", 0, {}
    for output in doc["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is None:
            values[output["name"]] = output["data"]
        else:
            values[output["name"]] = decode_raw(output["datatype"], buffer[offset:offset + size])
            offset += size
    assert offset == len(buffer)
    return doc, values


def test_rest_answer_json_binary_and_per_output_override():
    target = Target(CARD, "classify", "toy")
    tensors = [Tensor("scores", "FP32", (1, 2), (0.75, 0.25)), Tensor("classes", "INT64", (1, 2), (3, 1)),
               Tensor("labels", "BYTES", (1, 2), (b"three", b"one"))]
    def answer(request: InferRequest, tensors: list[Tensor]):
        return rest_answer(target, request, tensors, binary_outputs(target, request))

    plain = answer(InferRequest("9", {}, [b""], None), tensors)
    assert plain.content_type == "application/json" and "Inference-Header-Content-Length" not in plain.headers
    doc, values = _parse_answer(plain)
    assert doc["id"] == "9" and doc["model_name"] == "toy" and doc["model_version"] == "1"
    assert values == {"scores": [0.75, 0.25], "classes": [3, 1], "labels": ["three", "one"]}
    assert [o["shape"] for o in doc["outputs"]] == [[1, 2]] * 3
    mixed = answer(InferRequest("", {"binary_data_output": True}, [b""],
                                [("labels", {"binary_data": False}), ("classes", {})]), tensors[1:])
    assert mixed.content_type == "application/octet-stream"
    doc, values = _parse_answer(mixed)
    assert "id" not in doc and values == {"classes": [3, 1], "labels": ["three", "one"]}
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 16} and "data" not in doc["outputs"][0]
    _bad(lambda: binary_outputs(target, InferRequest("", {"binary_data_output": "yes"}, [b""], None)),
         "'binary_data_output' must be a boolean")
    _bad(lambda: binary_outputs(target, InferRequest("", {}, [b""], [("labels", {"binary_data": 1})])),
         "output 'labels' parameter 'binary_data' must be a boolean")


# gRPC request -------------------------------------------------------------------------------------

def test_grpc_request_raw_and_contents():
    message = pb.ModelInferRequest(model_name="toy", id="x")
    message.inputs.add(name="image", datatype="BYTES", shape=[3])
    message.raw_input_contents.append(encode_bytes(JPEGS))
    message.parameters["top_k"].int64_param = 3
    message.outputs.add(name="labels").parameters["binary_data"].bool_param = True
    request = _grpc_request(message)
    assert request.images == JPEGS and request.parameters == {"top_k": 3} and request.id == "x"
    assert request.outputs == [("labels", {"binary_data": True})]
    message = pb.ModelInferRequest(model_name="toy")
    message.inputs.add(name="image", datatype="BYTES", shape=[2]).contents.bytes_contents.extend(JPEGS[:2])
    assert _grpc_request(message).images == JPEGS[:2] and _grpc_request(message).outputs is None
    message.raw_input_contents.extend([b"", b""])
    _bad(lambda: _grpc_request(message), "2 raw_input_contents for 1 inputs")


# The protocol over a fake TorchServe ----------------------------------------------------------------

CARD = ModelCard("toy", "a toy", num_classes=4, feature_dim=3, endpoints=("classify", "features", "cam"),
                 input_height=8, input_width=8)


class FakeUpstream:
    """Answers like ConvScope: an image starting with b"bad" is a 400, no token a 401."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, str | None, float | None]] = []

    async def predict(self, name, inputs, authorization, timeout):
        self.calls.append((name, dict(inputs), authorization, timeout))
        image = inputs["data"]
        await asyncio.sleep(0.01 * (3 - len(self.calls) % 3))  # answers out of order
        if authorization is None:
            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, "InvalidKeyException", "missing token", 401)
        if image.startswith(b"bad"):
            raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "InvalidImage", "not an image", 400)
        seed = len(image)
        if name.endswith("-features"):
            return {"model": "toy", "layer": "fc:input", "dim": 3, "vector": [seed, seed + 0.5, -seed]}
        k = int(inputs.get("top_k", b"2"))
        return {"model": "toy", "predictions": [{"class": (seed + i) % 4, "label": f"c{(seed + i) % 4}",
                                                 "score": 1 / (i + 2)} for i in range(k)]}


@pytest.fixture
def oip():
    catalog = Catalog({"toy": CARD}, ready={"toy": True, "toy-features": False})
    return Oip(catalog, FakeUpstream())


def _infer(oip, name, images, parameters=None, outputs=None, authorization="Bearer k", timeout=5.0):
    request = InferRequest("", parameters or {}, images, outputs)
    return asyncio.run(oip.infer(oip.target(name), request, authorization, timeout))


def test_classification_stacks_answers_in_input_order(oip):
    scores, classes, labels = _infer(oip, "toy", [b"a", b"bbb", b"cc"], {"top_k": 3})
    assert (scores.name, scores.datatype, scores.shape) == ("scores", "FP32", (3, 3))
    assert classes.data == (1, 2, 3, 3, 0, 1, 2, 3, 0) and classes.datatype == "INT64"
    assert labels.data[:3] == (b"c1", b"c2", b"c3") and labels.shape == (3, 3)
    assert [c[1] for c in oip.upstream.calls] == [{"data": b"a", "top_k": b"3"}, {"data": b"bbb", "top_k": b"3"},
                                                  {"data": b"cc", "top_k": b"3"}]
    assert {c[2:] for c in oip.upstream.calls} == {("Bearer k", 5.0)}


def test_features_and_requested_outputs(oip):
    (features,) = _infer(oip, "toy-features", [b"a", b"bb"], {"normalize": False, "binary_data_output": True})
    assert features.shape == (2, 3) and features.data == (1, 1.5, -1, 2, 2.5, -2)
    assert oip.upstream.calls[0][1] == {"data": b"a", "normalize": b"false"}
    (labels, scores) = _infer(oip, "toy", [b"a"], outputs=[("labels", {}), ("scores", {"binary_data": True})])
    assert (labels.name, scores.name) == ("labels", "scores")


def test_bad_image_names_its_index_and_fails_the_request(oip):
    error = _bad(lambda: _infer(oip, "toy", [b"a", b"bad!", b"bad?"]), "input 'image' element 1: not an image")
    assert error.type == "InvalidImage"
    with pytest.raises(GatewayError) as caught:
        _infer(oip, "toy", [b"a"], authorization=None)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED and "element" not in caught.value.message


def test_request_errors_before_any_upstream_call(oip):
    _bad(lambda: _infer(oip, "toy", [b"a"], {"k": 3}), "unknown parameters ['k']", "takes top_k")
    _bad(lambda: _infer(oip, "toy-features", [b"a"], {"top_k": 3}), "['top_k']", "takes normalize")
    _bad(lambda: _infer(oip, "toy", [b"a"], {"top_k": [3]}), "'top_k' must be a number")
    _bad(lambda: _infer(oip, "toy", [b"a"], outputs=[("vector", {})]), "['vector']", "scores, classes, labels")
    _bad(lambda: _infer(oip, "toy", [b"a"], outputs=[("scores", {}), ("scores", {})]), "each at most once")
    _bad(lambda: _infer(oip, "toy", [b"a"], outputs=[("scores", {"classification": 3})]),
         "unsupported parameters ['classification']")
    assert oip.upstream.calls == []


def test_triton_timeout_parameter_caps_the_deadline(oip):
    _infer(oip, "toy", [b"a"], {"timeout": 2_000_000}, timeout=None)
    _infer(oip, "toy", [b"a"], {"timeout": 9_000_000}, timeout=5.0)
    assert [c[3] for c in oip.upstream.calls] == [2.0, 5.0]


def test_models_versions_readiness_and_metadata(oip):
    assert oip.served() == ["toy", "toy-features"]
    assert oip.ready("toy") and oip.ready("toy", "1") and not oip.ready("toy-features")
    for name, version in (("toy-cam", ""), ("nope", ""), ("toy-saliency", ""), ("toy", "2")):
        with pytest.raises(GatewayError) as caught:
            oip.target(name, version)
        assert caught.value.code == grpc.StatusCode.NOT_FOUND and caught.value.http_status == 404
    assert "serves the classification and features registrations toy, toy-features" in str(
        pytest.raises(GatewayError, oip.target, "toy-cam").value)
    assert oip.target("toy-features").metadata() == {
        "name": "toy-features", "versions": ["1"], "platform": "pytorch_torchserve",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]}
    assert [o["shape"] for o in oip.target("toy").metadata()["outputs"]] == [[-1, -1]] * 3
    assert oip.server_metadata()["extensions"] == ["binary_tensor_data"]
