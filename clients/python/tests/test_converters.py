"""The paired converters: a REST answer and its gRPC twin become equal results; arrays,
optional outputs and JSON-in-proto fields are read right."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from client_golden import GRID, HEATMAP, MAP, MAPS, OVERLAY, PAIRS, PATCH, RAW, STATS_DETAILS, WEIGHTS

from convscope_client import _calls as calls
from convscope_client import _convert as cv
from convscope_client._proto import convscope_pb2 as pb
from convscope_client.results import (
    ChannelStats,
    Explanation,
    FeatureMaps,
    Features,
    IndexWrite,
    LayerList,
    Neighbour,
    ReceptiveField,
    TopExamples,
)

OPERATIONS = {"classify": calls.CLASSIFY, "features": calls.FEATURES, "saliency": calls.SALIENCY,
              "cam": calls.CAM, "neighbours": calls.NEIGHBOURS, "index_add": calls.INDEX_ADD,
              "index_delete": calls.INDEX_DELETE, "index_stats": calls.INDEX_STATS,
              "inspect_layers": calls.INSPECT_LAYERS, "feature_maps": calls.FEATURE_MAPS, "filters": calls.FILTERS,
              "top_examples": calls.TOP_EXAMPLES}


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
    assert info.endpoints == ("classify", "features", "saliency", "cam", "neighbours", "inspect")
    assert cv.model_list_from_proto(GRPC_ONLY["ListModels"]) == [info]
    assert isinstance(info.feature_dim, int) and info.input_width == 28
    assert info.layers == cv.layer_list_from_json(PAIRS["inspect_layers"][0]).layers
    assert (info.cam_layer, info.first_conv, info.stored_layers, info.input_channels) == \
        ("features", "features.0", ("features",), 1)


def test_model_info_of_a_server_without_inspect():
    old = pb.ModelInfo(model="digits", num_classes=10, feature_dim=128, endpoints=["classify"], input_height=28,
                       input_width=28)
    info = cv.model_info_from_proto(old)
    assert (info.layers, info.cam_layer, info.first_conv, info.stored_layers) == ((), "", "", ())


def test_layers_and_receptive_fields():
    layers = cv.layer_list_from_proto(PAIRS["inspect_layers"][1])
    assert isinstance(layers, LayerList) and [i.name for i in layers.layers][:3] == ["features.0", "features.2",
                                                                                      "features"]
    assert layers.layer("features").receptive_field == ReceptiveField((10, 12), (4, 4), (1.5, -0.5), False)
    assert layers.layer("up").receptive_field is None and "Upsample" in layers.note
    assert layers.layer("pool").receptive_field.is_global and layers.layer("features").stored
    assert layers.layer("features").shape == (64, 7, 7) and layers.input_channels == 1
    with pytest.raises(KeyError):
        layers.layer("nope")


def test_a_receptive_field_window_is_centre_plus_minus_half_the_size():
    pooled = ReceptiveField((4, 4), (2, 2), (0.5, 0.5), False)  # 3x3 conv pad 1, then 2x2 pool stride 2
    assert pooled.window(0, 0) == (-1.0, -1.0, 2.0, 2.0)
    assert pooled.window(1, 3) == (1.0, 5.0, 4.0, 8.0)


def test_layers_without_a_note_say_none():
    doc = {k: v for k, v in PAIRS["inspect_layers"][0].items() if k != "note"}
    message = pb.InspectLayersResponse()
    message.CopyFrom(PAIRS["inspect_layers"][1])
    message.note = ""
    assert cv.layer_list_from_json(doc).note is None and cv.layer_list_from_proto(message).note is None


def test_feature_maps_fields():
    result = cv.feature_maps_from_json(PAIRS["feature_maps"][0])
    assert isinstance(result, FeatureMaps) and result.grid_png == GRID and result.shape == (64, 1, 2)
    assert result.array.dtype == np.float16 and result.array.shape == (2, 2, 3) and np.array_equal(result.array, MAPS)
    assert result.raw.shape == (2, 1, 2) and np.array_equal(result.raw, RAW) and not result.raw.flags.writeable
    assert result.channels[0] == ChannelStats(40, float(np.float32(2.41)), float(np.float32(7.93)), (0, 1))


@pytest.mark.parametrize("name", ["feature_maps", "filters"])
def test_inspect_outputs_not_asked_for_are_none_over_both_transports(name):
    doc = {k: v for k, v in PAIRS[name][0].items() if k not in ("array", "raw")}
    message = type(PAIRS[name][1])()
    message.CopyFrom(PAIRS[name][1])
    message.ClearField("array")
    if name == "feature_maps":
        message.ClearField("raw")
    operation = OPERATIONS[name]
    over_rest, over_grpc = operation.from_json(doc), operation.from_proto(message)
    assert over_rest == over_grpc and over_rest.array is None and over_rest.grid_png == GRID


def test_filters_weights():
    result = cv.filters_from_proto(PAIRS["filters"][1])
    assert np.array_equal(result.array, WEIGHTS) and result.array.shape == (2, 1, 3, 3)
    assert (result.mode, result.shown, result.layer) == ("grey", 2, "features.0")


def test_top_examples_fields():
    result = cv.top_examples_from_proto(PAIRS["top_examples"][1])
    assert isinstance(result, TopExamples) and (result.count, result.channel, result.layer) == (4000, 5, "features")
    best, other = result.examples
    assert (best.id, best.label, best.metadata, best.patch_png) == ("digits/train/0123", "7",
                                                                     {"split": "train", "row": 123}, PATCH)
    assert best.position == (2, 4) and best.box == (3, 0, 28, 24) and (best.width, best.height) == (28, 28)
    assert best.activation == float(np.float32(6.84))
    assert (other.label, other.metadata, other.patch_png) == (None, {}, None)


def test_inspect_results_save_what_is_there(tmp_path):
    maps = cv.feature_maps_from_json(PAIRS["feature_maps"][0])
    assert [p.name for p in maps.save(tmp_path)] == ["grid.png", "array.npy", "raw.npy"]
    assert (tmp_path / "grid.png").read_bytes() == GRID and np.array_equal(np.load(tmp_path / "raw.npy"), RAW)
    examples = cv.top_examples_from_json(PAIRS["top_examples"][0])
    out = tmp_path / "patches"
    out.mkdir()
    assert [p.name for p in examples.save(out)] == ["patch-1.png"] and (out / "patch-1.png").read_bytes() == PATCH
    filters = dataclasses.replace(cv.filters_from_json(PAIRS["filters"][0]), array=None)
    assert [p.name for p in filters.save(out)] == ["grid.png"]


def test_results_are_named_not_tuples():
    for cls in (Explanation, Features, IndexWrite, FeatureMaps, TopExamples, LayerList):
        assert dataclasses.is_dataclass(cls) and not issubclass(cls, tuple)
