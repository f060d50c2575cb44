"""The gateway's pure parts: typed requests to TorchServe inputs (only what the caller set, floats
as the caller wrote them, enums checked), ConvScope's JSON to typed responses, the error mapping
and the model catalogue read from the built archives (the inspect RPCs: test_gateway_inspect.py)."""

from __future__ import annotations

import base64
import json
import struct

import grpc
import pytest
from convscope_client._proto import convscope_pb2 as pb

from convscope.endpoints import SUFFIXES
from convscope_gateway import typed
from convscope_gateway.catalog import SUFFIXES as GATEWAY_SUFFIXES
from convscope_gateway.catalog import Catalog
from convscope_gateway.errors import GatewayError, is_error_document
from convscope_gateway.routing import f32_text

IMAGE = pb.Image(data=b"\x89PNG...")


@pytest.mark.parametrize("value", [0.15, 0.1, 1e-7, 99.5, 0.3333333, 123456.789, 0.0])
def test_f32_text_is_the_shortest_decimal_of_the_float32(value):
    as_f32 = struct.unpack("<f", struct.pack("<f", value))[0]
    text = f32_text(as_f32)
    assert struct.unpack("<f", struct.pack("<f", float(text)))[0] == as_f32
    assert len(text) <= len(repr(value)) + 1


def test_only_set_fields_are_sent():
    assert typed.classify_inputs(pb.ClassifyRequest(model="m", image=IMAGE)) == {"data": IMAGE.data}
    assert typed.classify_inputs(pb.ClassifyRequest(model="m", image=IMAGE, top_k=0))["top_k"] == b"0"
    assert typed.features_inputs(pb.FeaturesRequest(model="m", image=IMAGE, normalize=False))["normalize"] == b"false"
    inputs = typed.saliency_inputs(pb.SaliencyRequest(model="m", image=IMAGE))
    assert inputs == {"data": IMAGE.data, "method": b"gradient"}


def test_saliency_and_cam_parameters_carry_the_callers_values():
    inputs = typed.saliency_inputs(pb.SaliencyRequest(
        model="m", image=IMAGE, method=pb.SALIENCY_METHOD_INTEGRATED_GRADIENTS, steps=32, baseline=pb.BASELINE_BLUR,
        seed=5, rendering=pb.Rendering(outputs=[pb.OUTPUT_ARRAY, pb.OUTPUT_UNSPECIFIED, pb.OUTPUT_ARRAY],
                                       polarity=pb.POLARITY_POSITIVE, clip_high=99.0, alpha=0.15)))
    assert inputs == {"data": IMAGE.data, "method": b"integrated_gradients", "steps": b"32", "baseline": b"blur",
                      "seed": b"5", "output": b"array,heatmap", "polarity": b"positive", "clip_high": b"99",
                      "alpha": b"0.15"}
    cam = typed.cam_inputs(pb.CamRequest(model="m", image=IMAGE, method=pb.CAM_METHOD_LAYERCAM, layer="layer2", target=0))
    assert cam == {"data": IMAGE.data, "method": b"layercam", "layer": b"layer2", "target": b"0"}


@pytest.mark.parametrize("request_", [pb.SaliencyRequest(model="m", image=IMAGE, method=42),
                                      pb.CamRequest(model="m", image=IMAGE, rendering=pb.Rendering(outputs=[9])),
                                      pb.SaliencyRequest(model="m", image=IMAGE, baseline=7)])
def test_a_value_outside_an_enum_is_invalid_argument(request_):
    convert = typed.saliency_inputs if isinstance(request_, pb.SaliencyRequest) else typed.cam_inputs
    with pytest.raises(GatewayError) as bad:
        convert(request_)
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and "is not a" in bad.value.message


def test_index_requests():
    vector = pb.Probe(vector=pb.FeatureVector(values=[0.5, -1.0]))
    assert typed.neighbours_inputs(pb.NeighboursRequest(model="m", probe=vector, k=3)) == \
        {"vector": b"[0.5, -1.0]", "k": b"3"}
    add = typed.index_add_inputs(pb.IndexAddRequest(model="m", probe=pb.Probe(image=IMAGE), id="a/1", label="7",
                                                    metadata_json='{"x": 1}'))
    assert add == {"op": b"add", "id": b"a/1", "data": IMAGE.data, "label": b"7", "metadata": b'{"x": 1}'}
    assert typed.index_delete_inputs(pb.IndexDeleteRequest(model="m", id="a/1")) == {"op": b"delete", "id": b"a/1"}


def test_explanation_documents_become_bytes_not_base64():
    png, f16 = b"\x89PNG fake", b"\x00\x3c" * 6
    doc = {"model": "m", "method": "gradcam", "target": 3, "label": "3", "score": 0.5, "width": 3, "height": 2,
           "heatmap": base64.b64encode(png).decode(),
           "array": {"dtype": "float16", "shape": [2, 3], "data": base64.b64encode(f16).decode()}}
    message = typed.explanation(doc)
    assert (message.map.heatmap_png, message.map.array_f16, message.map.overlay_png) == (png, f16, b"")
    stats = typed.index_stats_response({"model": "m", "op": "stats", "count": 2, "dim": 4, "metric": "l2",
                                        "index_type": "flat", "backend": "faiss", "seq": 9})
    assert json.loads(stats.details_json) == {"seq": 9} and stats.count == 2


@pytest.mark.parametrize("status, code", [(400, grpc.StatusCode.INVALID_ARGUMENT), (404, grpc.StatusCode.NOT_FOUND),
                                          (413, grpc.StatusCode.RESOURCE_EXHAUSTED), (415, grpc.StatusCode.INVALID_ARGUMENT),
                                          (503, grpc.StatusCode.UNAVAILABLE), (500, grpc.StatusCode.INTERNAL),
                                          (504, grpc.StatusCode.DEADLINE_EXCEEDED)])
def test_error_documents_map_to_grpc_codes(status, code):
    doc = {"code": status, "type": "T", "message": "what was wrong"}
    assert is_error_document(doc)
    error = GatewayError.from_document(doc)
    assert (error.code, error.http_status, error.type) == (code, status, "T")
    assert dict(error.trailing_metadata()) == {"convscope-error-type": "T", "convscope-error-code": str(status)}


def test_an_answer_is_not_mistaken_for_an_error():
    assert not is_error_document({"model": "m", "predictions": []})
    assert not is_error_document({"code": 200, "type": "x", "message": "y"})


def test_the_catalog_reads_the_cards_of_the_built_archives(store):
    catalog = Catalog.from_store(store)
    assert set(catalog.cards) == {"digits", "efficientnet_lite0"}
    assert catalog.registration("digits", "cam") == "digits-cam"
    assert catalog.find_registration("efficientnet_lite0-features")[1] == "features"
    with pytest.raises(GatewayError) as unknown:
        catalog.registration("nope", "classify")
    assert unknown.value.code == grpc.StatusCode.NOT_FOUND and "digits" in unknown.value.message
    assert not catalog.all_ready()
    catalog.ready = {name: True for name in catalog.registrations}
    assert catalog.all_ready() and catalog.model_ready("digits")


def test_the_gateway_names_registrations_as_the_engine_does():
    assert GATEWAY_SUFFIXES == SUFFIXES


@pytest.mark.parametrize("code, details, expected, status", [
    # TorchServe's gRPC gives INTERNAL for a full job queue where its REST API gives 503
    (grpc.StatusCode.INTERNAL, 'Model "m-cam" has no worker to serve inference request. Please use scale '
                               'workers API to add workers.', grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.INTERNAL, 'Model not found: "nope"', grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.PERMISSION_DENIED, "Token Authorization failed", grpc.StatusCode.UNAUTHENTICATED, 401),
    (grpc.StatusCode.INTERNAL, "java.lang.NullPointerException", grpc.StatusCode.INTERNAL, 500)])
def test_torchserve_grpc_failures_map_to_what_they_mean(code, details, expected, status):
    from convscope_gateway.upstream import _mapped

    error = _mapped(grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details), "m-cam")
    assert (error.code, error.http_status) == (expected, status)
