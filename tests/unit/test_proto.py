"""The committed stubs match the protos, and the typed API's enums name exactly the engine's methods, outputs and
endpoints, so the gRPC contract cannot drift from what the engine serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from convscope_client._proto import convscope_pb2

from convscope.endpoints.inspect import OPS as INSPECT_OPS
from convscope.endpoints.inspect import OUTPUTS as INSPECT_OUTPUTS
from convscope.endpoints.neighbours import OPS
from convscope.explain import CAM, SALIENCY
from convscope.spec import ENDPOINTS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def v1():
    return convscope_pb2


def test_committed_stubs_are_what_the_protos_generate():
    """CI's drift check: `make proto` was run after the last change to proto/."""
    done = subprocess.run([sys.executable, str(REPO / "proto" / "generate.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_modules_import_without_the_engine():
    """The stubs' imports are relative: no ``convscope.v1`` module that would shadow the engine."""
    code = ("import sys; from convscope_client._proto import convscope_pb2_grpc; "
            "from convscope_gateway._proto import inference_pb2_grpc, open_inference_grpc_pb2_grpc; "
            "assert 'convscope' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _names(enum, prefix: str) -> set[str]:
    return {name.removeprefix(prefix).lower() for name in enum.keys() if not name.endswith("UNSPECIFIED")}


def test_method_enums_are_the_engines_methods(v1):
    assert _names(v1.SaliencyMethod, "SALIENCY_METHOD_") == set(SALIENCY)
    assert _names(v1.CamMethod, "CAM_METHOD_") == set(CAM)
    assert _names(v1.Output, "OUTPUT_") == {"heatmap", "overlay", "array"}
    assert _names(v1.Polarity, "POLARITY_") == {"positive", "negative", "absolute"}
    assert _names(v1.InspectOutput, "INSPECT_OUTPUT_") == {o for outputs in INSPECT_OUTPUTS.values() for o in outputs}


# Each endpoint of the engine -> the RPCs that reach it (the neighbours and inspect ops one each).
ENDPOINT_RPCS = {"classify": {"Classify"}, "features": {"Features"}, "saliency": {"Saliency"}, "cam": {"Cam"},
                 "neighbours": {"Neighbours", "IndexAdd", "IndexDelete", "IndexStats", "Project"},
                 "inspect": {"InspectLayers", "FeatureMaps", "Filters", "TopExamples"}}


def test_every_endpoint_and_index_operation_has_an_rpc(v1):
    rpcs = set(v1.DESCRIPTOR.services_by_name["ConvScope"].methods_by_name)
    assert set(ENDPOINTS) == set(ENDPOINT_RPCS) and set().union(*ENDPOINT_RPCS.values()) <= rpcs
    assert set(OPS) == {"search", "add", "delete", "stats", "project"}
    assert set(INSPECT_OPS) == {"layers", "feature_maps", "filters", "top_examples"}
    assert {"ListModels", "ModelMetadata", "Pipeline"} <= rpcs
    for rpc in v1.DESCRIPTOR.services_by_name["ConvScope"].methods:
        assert rpc.input_type.name == f"{rpc.name}Request" and rpc.output_type.name == f"{rpc.name}Response"
