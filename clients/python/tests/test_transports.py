"""Both clients over both transports, against real local servers: the same typed results, the
wire format each server expects, the token, and errors as one hierarchy."""

from __future__ import annotations

import json

import pytest
from client_fakes import Answer
from client_golden import PAIRS

from convscope_client import Client, InvalidArgument, NotFound, Unauthenticated, Unimplemented, errors
from convscope_client import _calls as calls
from convscope_client._proto import convscope_pb2 as pb
from convscope_client.client import resolve_token

IMAGE = b"\x89PNG\r\n\x1a\nseven"
CALLS = {  # call name -> (args, kwargs)
    "classify": (("digits", IMAGE), {"top_k": 3}),
    "features": (("digits", IMAGE), {}),
    "saliency": (("digits", IMAGE), {"method": "smoothgrad", "samples": 4, "alpha": 0.3,
                                     "outputs": ("heatmap", "overlay", "array")}),
    "cam": (("digits", IMAGE), {"method": "gradcam_pp", "layer": "conv2"}),
    "neighbours": (("digits", IMAGE), {"k": 2}),
    "index_add": (("digits", "mine/7"), {"vector": [0.5, 0.25], "metadata": {"a": 1}}),
    "index_delete": (("digits", "mine/7"), {}),
    "index_stats": (("digits",), {}),
    "inspect_layers": (("digits",), {}),
    "feature_maps": (("digits", IMAGE), {"layer": "features", "channels": [40, 3], "outputs": "grid,array,raw"}),
    "filters": (("digits",), {"outputs": ["grid", "array"]}),
    "top_examples": (("digits", 5), {"k": 2, "patches": True}),
}


def test_both_transports_return_equal_results(rest, grpc_target, mode):
    for name, (args, kwargs) in CALLS.items():
        over_rest = rest.call(name, *args, mode=mode, **kwargs)
        over_grpc = grpc_target.call(name, *args, mode=mode, **kwargs)
        assert over_rest == over_grpc, name
    assert [s.call for s in rest.server.seen] == [s.call for s in grpc_target.server.seen] == list(CALLS)


def test_grpc_receives_the_built_message(grpc_target, mode):
    for name, (args, kwargs) in CALLS.items():
        grpc_target.call(name, *args, mode=mode, **kwargs)
    built = [getattr(calls, name)(*args, **kwargs).message for name, (args, kwargs) in CALLS.items()]
    assert grpc_target.server.requests == built


def test_rest_sends_the_image_as_a_part_and_parameters_as_fields(rest, mode):
    rest.call("cam", "digits", IMAGE, mode=mode, method="gradcam_pp", alpha=0.3, outputs="heatmap,overlay")
    seen = rest.server.seen[0]
    assert seen.image == IMAGE and not seen.json
    assert seen.fields == {"method": "gradcam_pp", "output": "heatmap,overlay", "alpha": "0.3"}


def test_rest_sends_an_image_without_parameters_as_the_raw_body(rest, mode):
    rest.call("classify", "digits", IMAGE, mode=mode)
    seen = rest.server.seen[0]
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert seen.image == IMAGE and seen.fields == {} and not seen.json
    assert headers["content-type"] == "application/octet-stream"


def test_rest_sends_json_when_there_is_no_image(rest, mode):
    rest.call("neighbours", "digits", mode=mode, vector=[0.5, 1 / 3], k=4)
    seen = rest.server.seen[0]
    assert seen.json and seen.image is None
    assert seen.fields == {"vector": "[0.5,0.33333334]", "k": "4"}


def test_inspect_calls_reach_the_inspect_endpoint_with_their_op(rest, mode):
    for name, (args, kwargs) in CALLS.items():
        if name in ("inspect_layers", "feature_maps", "filters", "top_examples"):
            rest.call(name, *args, mode=mode, **kwargs)
    layers, maps, filters, top = rest.server.seen
    assert layers.json and layers.fields == {"op": "layers"}
    assert maps.image == IMAGE and not maps.json
    assert maps.fields == {"op": "feature_maps", "layer": "features", "channels": "40,3", "output": "grid,array,raw"}
    assert filters.json and filters.fields == {"op": "filters", "output": "grid,array"}
    assert top.json and top.fields == {"op": "top_examples", "channel": "5", "k": "2", "patches": "true"}


@pytest.mark.parametrize("source", ["argument", "env", "key_file"])
def test_token_is_sent_as_bearer(target, mode, source, monkeypatch, tmp_path):
    options = {}
    if source == "argument":
        options["token"] = "secret"
        monkeypatch.setenv("CONVSCOPE_TOKEN", "not-this-one")
    elif source == "env":
        monkeypatch.setenv("CONVSCOPE_TOKEN", "secret")
    else:
        key_file = tmp_path / "key_file.json"
        key_file.write_text(json.dumps({"inference": {"key": "secret"}, "management": {"key": "no"}}))
        monkeypatch.setenv("CONVSCOPE_KEY_FILE", str(key_file))
    target.call("index_stats", "digits", mode=mode, options=options)
    headers = {k.lower(): v for k, v in target.server.seen[0].headers.items()}
    assert headers["authorization"] == "Bearer secret"


def test_no_token_sends_no_authorization(target):
    target.call("index_stats", "digits")
    assert "authorization" not in {k.lower() for k in target.server.seen[0].headers}


def test_an_unreadable_key_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CONVSCOPE_KEY_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(Unauthenticated, match=r"missing\.json"):
        resolve_token()


@pytest.mark.parametrize("status, type_, code, cls", [
    (400, "InvalidImage", "INVALID_ARGUMENT", InvalidArgument),
    (404, "ModelNotFoundException", "NOT_FOUND", NotFound),
])
def test_server_errors_are_one_class(target, mode, status, type_, code, cls):
    target.server.answers.append(Answer(status, {"code": status, "type": type_, "message": "nope"}, code,
                                        ((errors.TYPE_KEY, type_), (errors.CODE_KEY, str(status)))))
    with pytest.raises(cls) as error:
        target.call("classify", "digits", IMAGE, mode=mode)
    assert (error.value.status, error.value.type) == (status, type_)
    assert error.value.grpc_code == (code if target.transport == "grpc" else None)


def test_model_listing_over_grpc(grpc_target, mode):
    models = grpc_target.call("list_models", mode=mode)
    assert [m.model for m in models] == ["digits"] and models[0].layers[0].name == "features.0"
    assert grpc_target.call("model_metadata", "digits", mode=mode) == models[0]


def test_model_listing_over_rest_is_refused_without_a_request(rest, mode):
    with pytest.raises(Unimplemented, match="gRPC API only"):
        rest.call("list_models", mode=mode)
    assert rest.server.seen == []


def test_grpc_takes_maps_larger_than_its_default_limit(grpc_target):
    big = pb.SaliencyResponse()
    big.CopyFrom(PAIRS["saliency"][1])
    big.explanation.map.overlay_png = b"\x89PNG" + bytes(6 << 20)  # 6 MB, over gRPC's default 4 MB
    grpc_target.server.answers.append(Answer(body=big))
    result = grpc_target.call("saliency", "digits", IMAGE)
    assert len(result.overlay_png) == 4 + (6 << 20)


def test_methods_show_their_parameters():
    import inspect

    from convscope_client import AsyncClient

    for cls in (Client, AsyncClient):
        assert list(inspect.signature(cls.classify).parameters) == ["self", "model", "image", "top_k"]
        assert list(inspect.signature(cls.feature_maps).parameters) == ["self", "model", "image", "layer", "channels",
                                                                       "top", "outputs"]
        assert list(inspect.signature(cls.top_examples).parameters) == ["self", "model", "channel", "layer", "k",
                                                                       "patches"]
        assert list(inspect.signature(cls.filters).parameters) == ["self", "model", "layer", "outputs"]
        assert list(inspect.signature(cls.inspect_layers).parameters) == ["self", "model"]
        assert list(inspect.signature(cls(transport="grpc").cam).parameters)[:3] == ["model", "image", "method"]
        assert cls.saliency.__doc__.startswith("A saliency map")
    assert inspect.iscoroutinefunction(AsyncClient.classify)


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="transport"):
        Client("x", transport="soap")


def test_default_addresses():
    assert Client().url == "http://127.0.0.1:8080"
    assert Client(transport="grpc").url == "127.0.0.1:50051"
    assert Client("localhost:9000").url == "http://localhost:9000"
    assert Client("grpc://localhost:9000", transport="grpc").url == "localhost:9000"
