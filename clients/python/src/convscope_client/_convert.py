"""Answers to results: one pair of converters per result type, REST JSON beside its protobuf
twin, so the two stay in step. Both round floats through float32 (the server's precision and
the proto's ``float``), which is what makes a REST result equal its gRPC twin."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from .results import (
    ProjectedPoint,
    Projection,
    ChannelStats,
    Classification,
    Explanation,
    FeatureMaps,
    Features,
    Filters,
    IndexStats,
    IndexWrite,
    LayerInfo,
    LayerList,
    ModelInfo,
    Neighbour,
    Neighbours,
    Prediction,
    ReceptiveField,
    TopExample,
    TopExamples,
    frozen_array,
)

Json = dict[str, Any]
_STATS_FIELDS = ("model", "op", "count", "dim", "metric", "index_type", "backend")


def f32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Python float."""
    return float(np.float32(value))


def _object(text: str) -> dict[str, Any]:
    """A JSON object sent as text over gRPC; empty text is ``{}``."""
    return dict(json.loads(text)) if text else {}


def classification_from_json(doc: Json) -> Classification:
    return Classification(doc["model"], tuple(
        Prediction(int(p["class"]), p["label"], f32(p["score"])) for p in doc["predictions"]))


def classification_from_proto(msg: Any) -> Classification:
    return Classification(msg.model, tuple(
        Prediction(p.class_index, p.label, f32(p.score)) for p in msg.predictions))


def features_from_json(doc: Json) -> Features:
    return Features(doc["model"], doc["layer"], frozen_array(doc["vector"], np.float32))


def features_from_proto(msg: Any) -> Features:
    return Features(msg.model, msg.layer, frozen_array(msg.vector, np.float32))


def explanation_from_json(doc: Json) -> Explanation:
    def png(key: str) -> bytes | None:
        return base64.b64decode(doc[key]) if key in doc else None

    array = doc.get("array")
    return Explanation(
        doc["model"], doc["method"], int(doc["target"]), doc["label"], f32(doc["score"]),
        int(doc["width"]), int(doc["height"]), png("heatmap"), png("overlay"),
        frozen_array(base64.b64decode(array["data"]), np.float16, tuple(array["shape"]))
        if array else None)


def explanation_from_proto(response: Any) -> Explanation:
    """From a ``SaliencyResponse`` or ``CamResponse``; an empty bytes field is an output that
    was not asked for."""
    msg, m = response.explanation, response.explanation.map
    return Explanation(
        msg.model, msg.method, msg.target, msg.label, f32(msg.score), m.width, m.height,
        m.heatmap_png or None, m.overlay_png or None,
        frozen_array(m.array_f16, np.float16, (m.height, m.width)) if m.array_f16 else None)


def neighbours_from_json(doc: Json) -> Neighbours:
    return Neighbours(doc["model"], tuple(
        Neighbour(n["id"], f32(n["distance"]), n.get("label"), dict(n.get("metadata") or {}))
        for n in doc["neighbours"]))


def neighbours_from_proto(msg: Any) -> Neighbours:
    return Neighbours(msg.model, tuple(
        Neighbour(n.id, f32(n.distance), n.label if n.HasField("label") else None,
                  _object(n.metadata_json))
        for n in msg.neighbours))


def index_write_from_json(doc: Json) -> IndexWrite:
    return IndexWrite(doc["model"], doc["id"], doc.get("created"), int(doc["count"]))


def index_add_from_proto(msg: Any) -> IndexWrite:
    return IndexWrite(msg.model, msg.id, msg.created, msg.count)


def index_delete_from_proto(msg: Any) -> IndexWrite:
    return IndexWrite(msg.model, msg.id, None, msg.count)


def projection_from_json(doc: Json) -> Projection:
    points = tuple(ProjectedPoint(p["id"], p.get("label"), float(p["x"]), float(p["y"]), bool(p.get("query", False)))
                   for p in doc["points"])
    plot = base64.b64decode(doc["plot"]) if doc.get("plot") else None
    return Projection(doc["model"], doc["method"], doc["subset"], int(doc["seed"]), points, int(doc["version"]),
                      bool(doc["cached"]), plot)


def projection_from_proto(msg: Any) -> Projection:
    points = tuple(ProjectedPoint(p.id, p.label if p.HasField("label") else None, p.x, p.y, p.query)
                   for p in msg.points)
    return Projection(msg.model, msg.method, msg.subset, msg.seed, points, msg.version, msg.cached,
                      msg.plot_png or None)


def index_stats_from_json(doc: Json) -> IndexStats:
    return IndexStats(doc["model"], int(doc["count"]), int(doc["dim"]), doc["metric"],
                      doc["index_type"], doc["backend"],
                      {k: v for k, v in doc.items() if k not in _STATS_FIELDS})


def index_stats_from_proto(msg: Any) -> IndexStats:
    return IndexStats(msg.model, msg.count, msg.dim, msg.metric, msg.index_type, msg.backend,
                      _object(msg.details_json))


def model_info_from_proto(msg: Any) -> ModelInfo:
    return ModelInfo(msg.model, msg.description, msg.num_classes, msg.feature_dim,
                     tuple(msg.endpoints), msg.input_height, msg.input_width,
                     tuple(layer_info_from_proto(m) for m in msg.layers), msg.cam_layer, msg.feature_layer,
                     msg.first_conv, tuple(msg.stored_layers), msg.input_channels)


def model_list_from_proto(msg: Any) -> list[ModelInfo]:
    return [model_info_from_proto(m) for m in msg.models]


def model_metadata_from_proto(msg: Any) -> ModelInfo:
    return model_info_from_proto(msg.info)


# --- inspect (docs/inspect.md): REST's [y, x] pairs are the proto's _y/_x (_h/_w) fields ------

def _pair(values: Any, kind: type = int) -> tuple[Any, Any]:
    first, second = values
    return kind(first), kind(second)


def _box(values: Any) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = values
    return int(x0), int(y0), int(x1), int(y1)


def _f16(array: Json | None) -> np.ndarray | None:
    """``{"dtype": "float16", "shape": [...], "data": "<base64>"}``; None stays None."""
    if array is None:
        return None
    return frozen_array(base64.b64decode(array["data"]), np.float16, tuple(array["shape"]))


def _f16_proto(msg: Any, field: str) -> np.ndarray | None:
    """A ``Float16Array`` field; unset (an output not asked for) is None."""
    if not msg.HasField(field):
        return None
    array = getattr(msg, field)
    return frozen_array(array.data, np.float16, tuple(array.shape))


def _png(doc: Json, key: str) -> bytes | None:
    return base64.b64decode(doc[key]) if doc.get(key) else None


def layer_info_from_json(doc: Json) -> LayerInfo:
    rf = doc.get("receptive_field")
    field = None if rf is None else ReceptiveField(_pair(rf["size"]), _pair(rf["jump"]), _pair(rf["start"], f32),
                                                   bool(rf["global"]))
    return LayerInfo(doc["name"], doc["type"], tuple(doc["shape"]), field, bool(doc["stored"]))


def layer_info_from_proto(msg: Any) -> LayerInfo:
    rf = msg.receptive_field
    field = ReceptiveField((rf.size_h, rf.size_w), (rf.jump_h, rf.jump_w), (f32(rf.start_y), f32(rf.start_x)),
                           getattr(rf, "global")) if msg.HasField("receptive_field") else None
    return LayerInfo(msg.name, msg.type, tuple(msg.shape), field, msg.stored)


def layer_list_from_json(doc: Json) -> LayerList:
    shape = doc["input"]
    return LayerList(doc["model"], int(shape["channels"]), int(shape["height"]), int(shape["width"]),
                     doc.get("cam_layer") or "", doc.get("feature_layer") or "", doc.get("first_conv") or "",
                     tuple(doc.get("stored_layers") or ()), tuple(layer_info_from_json(d) for d in doc["layers"]),
                     doc.get("note") or None)


def layer_list_from_proto(msg: Any) -> LayerList:
    return LayerList(msg.model, msg.input_channels, msg.input_height, msg.input_width, msg.cam_layer,
                     msg.feature_layer, msg.first_conv, tuple(msg.stored_layers),
                     tuple(layer_info_from_proto(m) for m in msg.layers), msg.note or None)


def feature_maps_from_json(doc: Json) -> FeatureMaps:
    channels = tuple(ChannelStats(int(c["channel"]), f32(c["mean"]), f32(c["max"]), _pair(c["argmax"]))
                     for c in doc["channels"])
    return FeatureMaps(doc["model"], doc["layer"], tuple(doc["shape"]), int(doc["width"]), int(doc["height"]),
                       channels, _png(doc, "grid"), _f16(doc.get("array")), _f16(doc.get("raw")))


def feature_maps_from_proto(msg: Any) -> FeatureMaps:
    channels = tuple(ChannelStats(c.channel, f32(c.mean), f32(c.max), (c.argmax_y, c.argmax_x))
                     for c in msg.channels)
    return FeatureMaps(msg.model, msg.layer, tuple(msg.shape), msg.width, msg.height, channels,
                       msg.grid_png or None, _f16_proto(msg, "array"), _f16_proto(msg, "raw"))


def filters_from_json(doc: Json) -> Filters:
    return Filters(doc["model"], doc["layer"], tuple(doc["shape"]), doc["mode"], int(doc["shown"]),
                   _png(doc, "grid"), _f16(doc.get("array")))


def filters_from_proto(msg: Any) -> Filters:
    return Filters(msg.model, msg.layer, tuple(msg.shape), msg.mode, msg.shown, msg.grid_png or None,
                   _f16_proto(msg, "array"))


def top_examples_from_json(doc: Json) -> TopExamples:
    examples = tuple(
        TopExample(e["id"], e.get("label"), dict(e.get("metadata") or {}), f32(e["activation"]),
                   _pair(e["position"]), _box(e["box"]), int(e["width"]), int(e["height"]), _png(e, "patch"))
        for e in doc["examples"])
    return TopExamples(doc["model"], doc["layer"], int(doc["channel"]), int(doc["count"]), examples)


def top_examples_from_proto(msg: Any) -> TopExamples:
    examples = tuple(
        TopExample(e.id, e.label if e.HasField("label") else None, _object(e.metadata_json), f32(e.activation),
                   (e.position_y, e.position_x), (e.box_x0, e.box_y0, e.box_x1, e.box_y1), e.width, e.height,
                   e.patch_png or None)
        for e in msg.examples)
    return TopExamples(msg.model, msg.layer, msg.channel, msg.count, examples)
