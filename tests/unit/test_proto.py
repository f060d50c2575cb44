"""The protos compile, and the typed API's enums name exactly the engine's methods, outputs and
endpoints, so the gRPC contract cannot drift from what the engine serves."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from grpc_tools import protoc

from convscope.endpoints.neighbours import OPS
from convscope.explain import CAM, SALIENCY
from convscope.spec import ENDPOINTS

PROTO = Path(__file__).resolve().parents[2] / "proto"


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    out = tmp_path_factory.mktemp("v1")
    include = str(Path(protoc.__file__).parent / "_proto")
    # Rooted at proto/convscope: generated as ``v1.convscope_pb2``, since a ``convscope.v1``
    # module would collide with the engine package (a choice left to `make proto`, issue 6).
    for root, proto in ((PROTO / "convscope", "v1/convscope.proto"), (PROTO, "torchserve/inference.proto")):
        assert protoc.main(["protoc", f"-I{root}", f"-I{include}", f"--python_out={out}",
                            f"--pyi_out={out}", f"--grpc_python_out={out}", str(root / proto)]) == 0, proto
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("v1.convscope_pb2")
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == "v1" or n.startswith("v1.")]:
            del sys.modules[name]


def _names(enum, prefix: str) -> set[str]:
    return {name.removeprefix(prefix).lower() for name in enum.keys() if not name.endswith("UNSPECIFIED")}


def test_method_enums_are_the_engines_methods(v1):
    assert _names(v1.SaliencyMethod, "SALIENCY_METHOD_") == set(SALIENCY)
    assert _names(v1.CamMethod, "CAM_METHOD_") == set(CAM)
    assert _names(v1.Output, "OUTPUT_") == {"heatmap", "overlay", "array"}
    assert _names(v1.Polarity, "POLARITY_") == {"positive", "negative", "absolute"}


def test_every_endpoint_and_index_operation_has_an_rpc(v1):
    rpcs = set(v1.DESCRIPTOR.services_by_name["ConvScope"].methods_by_name)
    assert {"Classify", "Features", "Saliency", "Cam", "Neighbours"} <= rpcs and len(ENDPOINTS) == 5
    assert {"IndexAdd", "IndexDelete", "IndexStats"} <= rpcs and set(OPS) == {"search", "add", "delete", "stats"}
    assert {"ListModels", "ModelMetadata", "Pipeline"} <= rpcs
    for rpc in v1.DESCRIPTOR.services_by_name["ConvScope"].methods:
        assert rpc.input_type.name == f"{rpc.name}Request" and rpc.output_type.name == f"{rpc.name}Response"
