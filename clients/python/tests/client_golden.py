"""The same answers twice: as the REST API writes them (JSON) and as the gRPC gateway does
(convscope.v1 messages). A REST result and its gRPC twin must convert to equal results.

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

DIGITS_INFO = pb.ModelInfo(model="digits", description="MNIST CNN", num_classes=10, feature_dim=128,
                           endpoints=["classify", "features", "saliency", "cam", "neighbours"],
                           input_height=28, input_width=28)
GRPC_ONLY = {
    "ListModels": pb.ListModelsResponse(models=[DIGITS_INFO]),
    "ModelMetadata": pb.ModelMetadataResponse(info=DIGITS_INFO),
}
