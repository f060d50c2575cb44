"""Answers to results: one pair of converters per result type, REST JSON beside its protobuf
twin, so the two stay in step. Both round floats through float32 (the server's precision and
the proto's ``float``), which is what makes a REST result equal its gRPC twin."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from .results import (
    Classification,
    Explanation,
    Features,
    IndexStats,
    IndexWrite,
    ModelInfo,
    Neighbour,
    Neighbours,
    Prediction,
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


def index_stats_from_json(doc: Json) -> IndexStats:
    return IndexStats(doc["model"], int(doc["count"]), int(doc["dim"]), doc["metric"],
                      doc["index_type"], doc["backend"],
                      {k: v for k, v in doc.items() if k not in _STATS_FIELDS})


def index_stats_from_proto(msg: Any) -> IndexStats:
    return IndexStats(msg.model, msg.count, msg.dim, msg.metric, msg.index_type, msg.backend,
                      _object(msg.details_json))


def model_info_from_proto(msg: Any) -> ModelInfo:
    return ModelInfo(msg.model, msg.description, msg.num_classes, msg.feature_dim,
                     tuple(msg.endpoints), msg.input_height, msg.input_width)


def model_list_from_proto(msg: Any) -> list[ModelInfo]:
    return [model_info_from_proto(m) for m in msg.models]


def model_metadata_from_proto(msg: Any) -> ModelInfo:
    return model_info_from_proto(msg.info)
