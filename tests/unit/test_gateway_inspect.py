"""The gateway's inspect RPCs (InspectLayers, FeatureMaps, Filters, TopExamples): requests to the
``<m>-inspect`` inputs (``op`` plus only what the caller set, as a form carries it, and only what
the engine takes for that op), ConvScope's JSON to messages, errors as for every RPC, and the
model card's layers in ``ModelInfo``. The answers are the client's golden documents
(clients/python/tests/client_golden.py): the gateway must make of each JSON exactly the message
the client's tests read as the same result, and the client reading the real service over gRPC
gets what it gets from that JSON over REST."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path

import grpc
import pytest
from convscope_client import Client
from convscope_client import _calls as calls
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc

from convscope.endpoints.inspect import APPLIES
from convscope_gateway import inspection, typed
from convscope_gateway.catalog import Catalog, ModelCard
from convscope_gateway.errors import GatewayError

IMAGE = pb.Image(data=b"\x89PNG...")
GOLDEN_FILE = Path(__file__).resolve().parents[2] / "clients" / "python" / "tests" / "client_golden.py"


def _golden():
    spec = importlib.util.spec_from_file_location("client_golden", GOLDEN_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOLDEN = _golden()


INSPECT_RPCS = {"inspect_layers": "InspectLayers", "feature_maps": "FeatureMaps", "filters": "Filters",
                "top_examples": "TopExamples"}
FULL_INSPECT = {  # every parameter of each op set
    "InspectLayers": pb.InspectLayersRequest(model="m"),
    "FeatureMaps": pb.FeatureMapsRequest(model="m", image=IMAGE, layer="features", channels=[40, 3], top=2,
                                         outputs=[pb.INSPECT_OUTPUT_RAW, pb.INSPECT_OUTPUT_UNSPECIFIED]),
    "Filters": pb.FiltersRequest(model="m", layer="features.0", outputs=[pb.INSPECT_OUTPUT_ARRAY]),
    "TopExamples": pb.TopExamplesRequest(model="m", layer="features", channel=5, k=3, patches=True),
}


def test_inspect_requests_send_their_op_and_only_what_was_set():
    assert typed.ROUTES["InspectLayers"].inputs(pb.InspectLayersRequest(model="m")) == {"op": b"layers"}
    assert inspection.feature_maps_inputs(pb.FeatureMapsRequest(model="m", image=IMAGE)) == \
        {"op": b"feature_maps", "data": IMAGE.data}
    assert inspection.filters_inputs(pb.FiltersRequest(model="m")) == {"op": b"filters"}
    assert inspection.top_examples_inputs(pb.TopExamplesRequest(model="m", channel=0, patches=False)) == \
        {"op": b"top_examples", "channel": b"0", "patches": b"false"}
    assert inspection.top_examples_inputs(pb.TopExamplesRequest(model="m")) == {"op": b"top_examples"}


def test_inspect_parameters_are_text_as_a_form_carries_them():
    assert inspection.feature_maps_inputs(FULL_INSPECT["FeatureMaps"]) == {
        "op": b"feature_maps", "data": IMAGE.data, "layer": b"features", "channels": b"40,3", "top": b"2",
        "output": b"raw,grid"}
    assert inspection.filters_inputs(FULL_INSPECT["Filters"]) == {"op": b"filters", "layer": b"features.0",
                                                                  "output": b"array"}
    assert inspection.top_examples_inputs(FULL_INSPECT["TopExamples"]) == {
        "op": b"top_examples", "layer": b"features", "channel": b"5", "k": b"3", "patches": b"true"}


@pytest.mark.parametrize("rpc", sorted(FULL_INSPECT))
def test_inspect_sends_only_parameters_the_engine_takes_for_the_op(rpc):
    inputs = typed.ROUTES[rpc].inputs(FULL_INSPECT[rpc])
    op = inputs.pop("op").decode()
    inputs.pop("data", None)
    assert set(inputs) == APPLIES[op] and typed.ROUTES[rpc].endpoint == "inspect"


def test_an_inspect_output_outside_the_enum_is_invalid_argument():
    with pytest.raises(GatewayError) as bad:
        inspection.filters_inputs(pb.FiltersRequest(model="m", outputs=[7]))
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and "InspectOutput" in bad.value.message


@pytest.mark.parametrize("name", sorted(INSPECT_RPCS))
def test_inspect_documents_become_the_golden_messages(name):
    doc, message = GOLDEN.INSPECT_PAIRS[name]
    assert typed.ROUTES[INSPECT_RPCS[name]].response(doc) == message


def test_inspect_documents_without_optional_parts():
    layers = inspection.inspect_layers_response({**GOLDEN.INSPECT_PAIRS["inspect_layers"][0], "first_conv": None,
                                                 "note": None})
    assert layers.first_conv == "" and layers.note == "" and not layers.layers[3].HasField("receptive_field")
    assert getattr(layers.layers[4].receptive_field, "global") and layers.layers[2].receptive_field.start_x == -0.5
    doc = {k: v for k, v in GOLDEN.INSPECT_PAIRS["feature_maps"][0].items() if k not in ("grid", "array", "raw")}
    maps = inspection.feature_maps_response(doc)
    assert (maps.grid_png, maps.HasField("array"), maps.HasField("raw")) == (b"", False, False)
    example = inspection.top_examples_response(GOLDEN.INSPECT_PAIRS["top_examples"][0]).examples[1]
    assert not example.HasField("label") and example.metadata_json == "{}" and example.patch_png == b""


def test_an_array_that_is_not_float16_is_an_unexpected_document():
    doc = {**GOLDEN.INSPECT_PAIRS["filters"][0], "array": {"dtype": "float32", "shape": [1], "data": ""}}
    with pytest.raises(ValueError, match="float32"):
        inspection.filters_response(doc)


def test_model_info_carries_the_cards_layers():
    layers_doc = GOLDEN.INSPECT_PAIRS["inspect_layers"][0]
    card = ModelCard.from_document({"name": "digits", "num_classes": 10, "feature_dim": 128,
                                    "endpoints": ["classify", "inspect"], "input_height": 28, "input_width": 28,
                                    "input_channels": 1, **{k: layers_doc[k] for k in (
                                        "layers", "cam_layer", "feature_layer", "first_conv", "stored_layers")}})
    info = typed.model_info(card)
    assert list(info.layers) == list(GOLDEN.INSPECT_PAIRS["inspect_layers"][1].layers)
    assert (info.cam_layer, info.first_conv, list(info.stored_layers), info.input_channels) == \
        ("features", "features.0", ["features"], 1)
    assert card.registration("inspect") == "digits-inspect"


def test_model_info_of_an_archive_built_before_inspect():
    card = ModelCard.from_document({"name": "old", "num_classes": 2, "feature_dim": 4, "endpoints": ["classify"],
                                    "input_height": 8, "input_width": 8})
    info = typed.model_info(card)
    assert (list(info.layers), info.first_conv, list(info.stored_layers), info.input_channels) == ([], "", [], 3)


class _Upstream:
    """Answers every ``predict`` with ``doc`` (or raises it, a ``GatewayError``); records the calls."""

    def __init__(self, doc) -> None:
        self.doc, self.calls = doc, []

    async def predict(self, name, inputs, token, timeout):
        self.calls.append((name, inputs))
        if isinstance(self.doc, GatewayError):
            raise self.doc
        return self.doc


def _service(doc) -> typed.ConvScopeService:
    card = ModelCard("digits", "", 10, 128, ("classify", "neighbours", "inspect"), 28, 28)
    return typed.ConvScopeService(Catalog({"digits": card}), _Upstream(doc))


def test_inspect_rpcs_call_the_inspect_registration():
    doc, message = GOLDEN.INSPECT_PAIRS["top_examples"]
    service = _service(doc)
    request = pb.TopExamplesRequest(model="digits", channel=5)
    assert asyncio.run(service.answer("TopExamples", request, "Bearer k", 5.0)) == message
    assert service.upstream.calls == [("digits-inspect", {"op": b"top_examples", "channel": b"5"})]


@pytest.mark.parametrize("status, code", [(400, grpc.StatusCode.INVALID_ARGUMENT), (404, grpc.StatusCode.NOT_FOUND)])
def test_inspect_errors_are_those_of_every_rpc(status, code):
    refusal = GatewayError.from_document({"code": status, "type": "BadRequest", "message": "needs a channel"})
    with pytest.raises(GatewayError) as error:
        asyncio.run(_service(refusal).answer("TopExamples", pb.TopExamplesRequest(model="digits"), "Bearer k", 5.0))
    assert (error.value.code, error.value.http_status) == (code, status)


def test_a_model_without_the_inspect_endpoint_is_not_found():
    card = ModelCard("old", "", 10, 128, ("classify",), 28, 28)
    service = typed.ConvScopeService(Catalog({"old": card}), _Upstream({}))
    with pytest.raises(GatewayError) as error:
        asyncio.run(service.answer("InspectLayers", pb.InspectLayersRequest(model="old"), "Bearer k", 5.0))
    assert error.value.code == grpc.StatusCode.NOT_FOUND and error.value.type == "EndpointNotFound"


def test_the_pipeline_takes_inspect_requests():
    oneof = {f.name for f in pb.PipelineRequest.DESCRIPTOR.oneofs_by_name["request"].fields}
    assert oneof == set(typed.PIPELINE_RPCS)
    answers = {f.name for f in pb.PipelineResponse.DESCRIPTOR.oneofs_by_name["answer"].fields}
    assert answers == oneof | {"error"}
    doc, message = GOLDEN.INSPECT_PAIRS["inspect_layers"]
    item = pb.PipelineRequest(key="a", inspect_layers=pb.InspectLayersRequest(model="digits"))
    answer = asyncio.run(_service(doc)._pipeline_item(item, "Bearer k", 5.0))
    assert answer.key == "a" and answer.inspect_layers == message


def test_the_client_reads_the_gateways_inspect_answers_as_it_reads_rest():
    """Client -> the real gateway service (in-process, its upstream answering the golden JSON) ->
    the same results as the client's own converters make of that JSON over REST."""
    upstream, ready, port = _Upstream(None), threading.Event(), []
    loop, stop = asyncio.new_event_loop(), asyncio.Event()

    async def serve():
        server = grpc.aio.server()
        card = ModelCard("digits", "", 10, 128, ("inspect",), 28, 28)
        pb_grpc.add_ConvScopeServicer_to_server(typed.ConvScopeService(Catalog({"digits": card}), upstream), server)
        port.append(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        ready.set()
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    builds = {"inspect_layers": ("digits",), "feature_maps": ("digits", b"png"), "filters": ("digits",),
              "top_examples": ("digits", 5)}
    try:
        assert ready.wait(10)
        with Client(f"127.0.0.1:{port[0]}", "grpc", token="k", retries=0) as client:
            for name, args in builds.items():
                upstream.doc = doc = GOLDEN.INSPECT_PAIRS[name][0]
                assert getattr(client, name)(*args) == getattr(calls, name)(*args).operation.from_json(doc), name
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    assert [inputs["op"] for _, inputs in upstream.calls] == [b"layers", b"feature_maps", b"filters", b"top_examples"]
