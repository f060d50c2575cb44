"""The same answers twice: as the REST API writes them (JSON) and as the gRPC gateway does
(convscope.v1 messages). A REST result and its gRPC twin must convert to equal results. The
inspect pairs are also exactly what the gateway makes of the JSON (tests/unit/test_gateway_convert.py).

The JSON floats are not float32 values (0.9871234 is not one): the converters must round both
sides to float32, as the server's own answers are."""

from __future__ import annotations

import base64
import json

import numpy as np

from convscope_client._proto import convscope_pb2 as pb

HEATMAP = b"\x89PNG\r\n\x1a\n" + b"fake heatmap"
OVERLAY = b"\x89PNG\r\n\x1a\n" + b"fake overlay"
MAP = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, 0.125]], np.float16)  # [height 2, width 3]
VECTOR = [0.1, -0.2, 0.3, 0.4]
STATS_DETAILS = {"seq": 4001, "snapshot_seq": 4000, "log_bytes": 512}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


EXPLANATION_JSON = {
    "model": "digits", "method": "smoothgrad", "target": 7, "label": "7", "score": 0.9871234,
    "width": 3, "height": 2, "heatmap": _b64(HEATMAP), "overlay": _b64(OVERLAY),
    "array": {"dtype": "float16", "shape": [2, 3], "data": _b64(MAP.astype("<f2").tobytes())},
}
EXPLANATION_PROTO = pb.Explanation(
    model="digits", method="smoothgrad", target=7, label="7", score=0.9871234,
    map=pb.ExplanationMap(width=3, height=2, heatmap_png=HEATMAP, overlay_png=OVERLAY,
                          array_f16=MAP.astype("<f2").tobytes()))

# call name -> (REST JSON, gRPC response)
PAIRS = {
    "classify": (
        {"model": "digits", "predictions": [{"class": 7, "label": "7", "score": 0.9871234},
                                            {"class": 1, "label": "1", "score": 0.0100001}]},
        pb.ClassifyResponse(model="digits", predictions=[
            pb.Prediction(class_index=7, label="7", score=0.9871234),
            pb.Prediction(class_index=1, label="1", score=0.0100001)])),
    "features": (
        {"model": "digits", "layer": "fc1", "dim": 4, "vector": VECTOR},
        pb.FeaturesResponse(model="digits", layer="fc1", vector=VECTOR)),
    "saliency": (EXPLANATION_JSON, pb.SaliencyResponse(explanation=EXPLANATION_PROTO)),
    "cam": (EXPLANATION_JSON, pb.CamResponse(explanation=EXPLANATION_PROTO)),
    "neighbours": (
        {"model": "digits", "neighbours": [
            {"id": "digits/train/1", "distance": 0.0012345, "label": "7", "metadata": {"row": 1}},
            {"id": "mine/2", "distance": 0.5, "label": None, "metadata": {}}]},
        pb.NeighboursResponse(model="digits", neighbours=[
            pb.Neighbour(id="digits/train/1", distance=0.0012345, label="7", metadata_json='{"row": 1}'),
            pb.Neighbour(id="mine/2", distance=0.5, metadata_json="")])),
    "index_add": (
        {"model": "digits", "op": "add", "id": "mine/7", "created": True, "count": 4001},
        pb.IndexAddResponse(model="digits", id="mine/7", created=True, count=4001)),
    "index_delete": (
        {"model": "digits", "op": "delete", "id": "mine/7", "count": 4000},
        pb.IndexDeleteResponse(model="digits", id="mine/7", count=4000)),
    "index_stats": (
        {"model": "digits", "op": "stats", "count": 4000, "dim": 128, "metric": "cosine",
         "index_type": "flat", "backend": "faiss", **STATS_DETAILS},
        pb.IndexStatsResponse(model="digits", count=4000, dim=128, metric="cosine", index_type="flat",
                              backend="faiss", details_json=json.dumps(STATS_DETAILS))),
}

# --- inspect (docs/inspect.md) ------------------------------------------------------------------

GRID = b"\x89PNG\r\n\x1a\n" + b"fake grid"
PATCH = b"\x89PNG\r\n\x1a\n" + b"fake patch"
MAPS = (np.arange(12, dtype=np.float16) / 4 - 1).reshape(2, 2, 3)  # [n 2, height 2, width 3], raw values
RAW = np.array([[[1.5, -0.5]], [[7.93, 0.25]]], np.float16)  # [n 2, h 1, w 2]
WEIGHTS = np.linspace(-1, 1, 18).astype(np.float16).reshape(2, 1, 3, 3)  # [out 2, in 1, 3, 3]


def _f16(array: np.ndarray) -> dict:
    return {"dtype": "float16", "shape": list(array.shape), "data": _b64(array.astype("<f2").tobytes())}


def _f16_proto(array: np.ndarray) -> pb.Float16Array:
    return pb.Float16Array(shape=array.shape, data=array.astype("<f2").tobytes())


def _rf(size, jump, start, whole=False) -> dict:
    return {"size": size, "jump": jump, "start": start, "global": whole}


def _rf_proto(size, jump, start, whole=False) -> pb.ReceptiveField:
    return pb.ReceptiveField(size_h=size[0], size_w=size[1], jump_h=jump[0], jump_w=jump[1], start_y=start[0],
                             start_x=start[1], **{"global": whole})


LAYERS = [  # name, type, shape, stored, receptive field (size, jump, start, global) or None
    ("features.0", "Conv2d", [32, 28, 28], False, ([3, 3], [1, 1], [0.0, 0.0])),
    ("features.2", "MaxPool2d", [32, 14, 14], False, ([4, 4], [2, 2], [0.5, 0.5])),
    ("features", "Sequential", [64, 7, 7], True, ([10, 12], [4, 4], [1.5, -0.5])),
    ("up", "Upsample", [64, 14, 14], False, None),
    ("pool", "AdaptiveAvgPool2d", [64, 1, 1], False, ([28, 28], [4, 4], [13.5, 13.5], True)),
]
LAYERS_NOTE = "up: the receptive field of an Upsample cannot be derived"
LAYERS_JSON = [{"name": n, "type": t, "shape": s, "stored": st, "receptive_field": rf and _rf(*rf)}
               for n, t, s, st, rf in LAYERS]
LAYERS_PROTO = [pb.LayerInfo(name=n, type=t, shape=s, stored=st, receptive_field=rf and _rf_proto(*rf))
                for n, t, s, st, rf in LAYERS]
CHANNELS = [(40, 2.41, 7.93, [0, 1]), (3, 0.1234567, 1.5, [0, 0])]  # channel, mean, max, argmax
EXAMPLES = [  # id, label, metadata, activation, position, box, width, height, patch
    ("digits/train/0123", "7", {"split": "train", "row": 123}, 6.84, [2, 4], [3, 0, 28, 24], 28, 28, PATCH),
    ("mine/2", None, {}, 5.1015625, [0, 0], [0, 0, 10, 12], 300, 451, None),
]

INSPECT_PAIRS = {
    "inspect_layers": (
        {"model": "digits", "op": "layers", "input": {"channels": 1, "height": 28, "width": 28},
         "cam_layer": "features", "feature_layer": "fc:input", "first_conv": "features.0",
         "stored_layers": ["features"], "layers": LAYERS_JSON, "note": LAYERS_NOTE},
        pb.InspectLayersResponse(model="digits", input_channels=1, input_height=28, input_width=28,
                                 cam_layer="features", feature_layer="fc:input", first_conv="features.0",
                                 stored_layers=["features"], layers=LAYERS_PROTO, note=LAYERS_NOTE)),
    "feature_maps": (
        {"model": "digits", "op": "feature_maps", "layer": "features", "shape": [64, 1, 2], "width": 3, "height": 2,
         "channels": [{"channel": c, "mean": m, "max": x, "argmax": a} for c, m, x, a in CHANNELS],
         "grid": _b64(GRID), "array": _f16(MAPS), "raw": _f16(RAW)},
        pb.FeatureMapsResponse(model="digits", layer="features", shape=[64, 1, 2], width=3, height=2, channels=[
            pb.ChannelStats(channel=c, mean=m, max=x, argmax_y=a[0], argmax_x=a[1]) for c, m, x, a in CHANNELS],
            grid_png=GRID, array=_f16_proto(MAPS), raw=_f16_proto(RAW))),
    "filters": (
        {"model": "digits", "op": "filters", "layer": "features.0", "shape": [2, 1, 3, 3], "mode": "grey",
         "shown": 2, "grid": _b64(GRID), "array": _f16(WEIGHTS)},
        pb.FiltersResponse(model="digits", layer="features.0", shape=[2, 1, 3, 3], mode="grey", shown=2,
                           grid_png=GRID, array=_f16_proto(WEIGHTS))),
    "top_examples": (
        {"model": "digits", "op": "top_examples", "layer": "features", "channel": 5, "count": 4000, "examples": [
            {"id": i, "label": lb, "metadata": md, "activation": a, "position": p, "box": b, "width": w, "height": h,
             **({"patch": _b64(patch)} if patch else {})} for i, lb, md, a, p, b, w, h, patch in EXAMPLES]},
        pb.TopExamplesResponse(model="digits", layer="features", channel=5, count=4000, examples=[
            pb.TopExample(id=i, label=lb, metadata_json=json.dumps(md, separators=(",", ":")), activation=a,
                          position_y=p[0], position_x=p[1], box_x0=b[0], box_y0=b[1], box_x1=b[2], box_y1=b[3],
                          width=w, height=h, patch_png=patch)
            for i, lb, md, a, p, b, w, h, patch in EXAMPLES])),
}
PAIRS.update(INSPECT_PAIRS)

DIGITS_INFO = pb.ModelInfo(model="digits", description="MNIST CNN", num_classes=10, feature_dim=128,
                           endpoints=["classify", "features", "saliency", "cam", "neighbours", "inspect"],
                           input_height=28, input_width=28, layers=LAYERS_PROTO, cam_layer="features",
                           feature_layer="fc:input", first_conv="features.0", stored_layers=["features"],
                           input_channels=1)
GRPC_ONLY = {
    "ListModels": pb.ListModelsResponse(models=[DIGITS_INFO]),
    "ModelMetadata": pb.ModelMetadataResponse(info=DIGITS_INFO),
}
