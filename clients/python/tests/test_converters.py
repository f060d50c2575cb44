"""The paired converters: a REST answer and its gRPC twin become equal results; arrays,
optional outputs and JSON-in-proto fields are read right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from client_golden import HEATMAP, MAP, OVERLAY, PAIRS, STATS_DETAILS

from convscope_client import _calls as calls
from convscope_client import _convert as cv
from convscope_client._proto import convscope_pb2 as pb
from convscope_client.results import Explanation, Features, IndexWrite, Neighbour

OPERATIONS = {"classify": calls.CLASSIFY, "features": calls.FEATURES, "saliency": calls.SALIENCY,
              "cam": calls.CAM, "neighbours": calls.NEIGHBOURS, "index_add": calls.INDEX_ADD,
              "index_delete": calls.INDEX_DELETE, "index_stats": calls.INDEX_STATS}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_rest_and_grpc_answers_convert_to_equal_results(name):
    doc, message = PAIRS[name]
    operation = OPERATIONS[name]
    over_rest, over_grpc = operation.from_json(doc), operation.from_proto(message)
    assert over_rest == over_grpc
    assert type(over_rest) is type(over_grpc)


def test_scores_are_float32_values():
    result = cv.classification_from_json(PAIRS["classify"][0])
    assert result.predictions[0].score == float(np.float32(0.9871234)) != 0.9871234


def test_explanation_fields():
    result = cv.explanation_from_json(PAIRS["saliency"][0])
    assert (result.heatmap_png, result.overlay_png) == (HEATMAP, OVERLAY)
    assert result.array.dtype == np.float16 and result.array.shape == (2, 3)
    assert np.array_equal(result.array, MAP) and not result.array.flags.writeable
    assert (result.width, result.height, result.target, result.method) == (3, 2, 7, "smoothgrad")


def test_missing_outputs_are_none_over_both_transports():
    doc = {k: v for k, v in PAIRS["cam"][0].items() if k not in ("overlay", "array")}
    message = pb.CamResponse()
    message.CopyFrom(PAIRS["cam"][1])
    message.explanation.map.overlay_png = b""
    message.explanation.map.array_f16 = b""
    over_rest, over_grpc = cv.explanation_from_json(doc), cv.explanation_from_proto(message)
    assert over_rest == over_grpc
    assert over_rest.overlay_png is None and over_rest.array is None and over_rest.heatmap_png == HEATMAP


def test_neighbour_labels_and_metadata():
    result = cv.neighbours_from_proto(PAIRS["neighbours"][1])
    assert result.neighbours[0] == Neighbour("digits/train/1", float(np.float32(0.0012345)), "7", {"row": 1})
    assert result.neighbours[1].label is None and result.neighbours[1].metadata == {}


def test_index_writes_and_stats():
    assert cv.index_write_from_json(PAIRS["index_delete"][0]) == IndexWrite("digits", "mine/7", None, 4000)
    assert cv.index_add_from_proto(PAIRS["index_add"][1]).created is True
    stats = cv.index_stats_from_json(PAIRS["index_stats"][0])
    assert stats.details == STATS_DETAILS and (stats.count, stats.dim, stats.backend) == (4000, 128, "faiss")


def test_features_vector_is_float32_and_comparable():
    result = cv.features_from_json(PAIRS["features"][0])
    assert result.vector.dtype == np.float32 and result.dim == 4
    other = dataclasses.replace(result, vector=np.float32([0.1, -0.2, 0.3, 0.5]))
    assert result != other
    assert result != dataclasses.replace(result, vector=result.vector.astype(np.float64))
    with pytest.raises(TypeError):
        hash(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.layer = "other"  # type: ignore[misc]


def test_explanation_save_writes_what_is_there(tmp_path):
    result = cv.explanation_from_json(PAIRS["saliency"][0])
    written = result.save(tmp_path / "seven.smoothgrad")
    assert [p.name for p in written] == ["seven.smoothgrad.heatmap.png", "seven.smoothgrad.overlay.png",
                                         "seven.smoothgrad.npy"]
    assert written[0].read_bytes() == HEATMAP and written[1].read_bytes() == OVERLAY
    assert np.array_equal(np.load(written[2]), MAP)
    only_heatmap = dataclasses.replace(result, overlay_png=None, array=None)
    assert [p.name for p in only_heatmap.save(tmp_path / "x")] == ["x.heatmap.png"]


def test_model_info_from_proto():
    from client_golden import GRPC_ONLY

    info = cv.model_metadata_from_proto(GRPC_ONLY["ModelMetadata"])
    assert info.endpoints == ("classify", "features", "saliency", "cam", "neighbours")
    assert cv.model_list_from_proto(GRPC_ONLY["ListModels"]) == [info]
    assert isinstance(info.feature_dim, int) and info.input_width == 28


def test_results_are_named_not_tuples():
    for cls in (Explanation, Features, IndexWrite):
        assert dataclasses.is_dataclass(cls) and not issubclass(cls, tuple)
