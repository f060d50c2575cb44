"""The typed ``Project`` RPC: ``op=project`` on ``<m>-neighbours`` (docs/neighbours.md).

The request's fields become the registration's input map as the REST form carries them; the
engine checks every range and combination (labels only with subset LABELS, a probe and k only
with NEIGHBOURS), so REST, TorchServe gRPC and this API refuse exactly the same input.
"""

from __future__ import annotations

import json

from convscope_client._proto import convscope_pb2 as pb

from .errors import invalid
from .routing import Route, b64, enum_text, image_inputs, optional_inputs


def project_inputs(r: pb.ProjectRequest) -> dict[str, bytes]:
    inputs = {"op": b"project"}
    method = enum_text(pb.ProjectionMethod, r.method, "PROJECTION_METHOD_", "method")
    subset = enum_text(pb.ProjectionSubset, r.subset, "PROJECTION_SUBSET_", "subset")
    if method:
        inputs["method"] = method.encode()
    if subset:
        inputs["subset"] = subset.encode()
    if r.labels:
        if any("," in label for label in r.labels):
            raise invalid("labels cannot hold a comma over this API (the form sends them comma-separated)")
        inputs["labels"] = ",".join(r.labels).encode()
    kind = r.probe.WhichOneof("kind")
    if kind == "image":
        inputs.update(image_inputs(r.probe.image))
    elif kind == "vector":
        inputs["vector"] = json.dumps(list(r.probe.vector.values)).encode()
    optional_inputs(r, inputs, "k", "seed")
    if r.plot:
        inputs["plot"] = b"true"
    return inputs


def project_response(doc: dict) -> pb.ProjectResponse:
    return pb.ProjectResponse(
        model=doc["model"], method=doc["method"], subset=doc["subset"], seed=doc["seed"],
        points=[pb.ProjectedPoint(id=p["id"], label=p.get("label"), x=p["x"], y=p["y"], query=p.get("query", False))
                for p in doc["points"]],
        version=doc["version"], cached=doc["cached"], plot_png=b64(doc, "plot"))


ROUTES: dict[str, Route] = {"Project": Route("neighbours", project_inputs, project_response)}
