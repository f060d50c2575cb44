"""The inspect RPCs (``InspectLayers``, ``FeatureMaps``, ``Filters``, ``TopExamples``): each is
one call to ``<m>-inspect`` with its ``op`` and the parameters the caller set, as a multipart
form carries them (channel and output lists as comma lists, booleans as ``true``/``false``), and
ConvScope's JSON (docs/inspect.md) becomes the response message, base64 becoming bytes and REST's
``[y, x]`` pairs the proto's ``_y``/``_x`` (``_h``/``_w``) fields."""

from __future__ import annotations

import json

from convscope_client._proto import convscope_pb2 as pb

from .routing import Route, b64, enum_list_text, image_inputs, optional_inputs

ENDPOINT = "inspect"


def _outputs(message, inputs: dict[str, bytes]) -> None:
    outputs = enum_list_text(pb.InspectOutput, message.outputs, "INSPECT_OUTPUT_", "outputs", "grid")
    if outputs:
        inputs["output"] = outputs


def _layer(message, inputs: dict[str, bytes]) -> None:
    if message.layer:
        inputs["layer"] = message.layer.encode()


# --- requests -> TorchServe inputs ------------------------------------------------------------

def inspect_layers_inputs(_r: pb.InspectLayersRequest) -> dict[str, bytes]:
    return {"op": b"layers"}


def feature_maps_inputs(r: pb.FeatureMapsRequest) -> dict[str, bytes]:
    inputs = {"op": b"feature_maps", **image_inputs(r.image)}
    _layer(r, inputs)
    if r.channels:
        inputs["channels"] = ",".join(str(c) for c in r.channels).encode()
    optional_inputs(r, inputs, "top")
    _outputs(r, inputs)
    return inputs


def filters_inputs(r: pb.FiltersRequest) -> dict[str, bytes]:
    inputs = {"op": b"filters"}
    _layer(r, inputs)
    _outputs(r, inputs)
    return inputs


def top_examples_inputs(r: pb.TopExamplesRequest) -> dict[str, bytes]:
    inputs = {"op": b"top_examples"}
    _layer(r, inputs)
    optional_inputs(r, inputs, "channel", "k", "patches")
    return inputs


# --- ConvScope's JSON -> responses ------------------------------------------------------------

def receptive_field(doc: dict | None) -> pb.ReceptiveField | None:
    """``{"size": [h, w], "jump": [h, w], "start": [y, x], "global": b}``; null stays unset."""
    if doc is None:
        return None
    (size_h, size_w), (jump_h, jump_w), (start_y, start_x) = doc["size"], doc["jump"], doc["start"]
    return pb.ReceptiveField(size_h=int(size_h), size_w=int(size_w), jump_h=int(jump_h), jump_w=int(jump_w),
                             start_y=start_y, start_x=start_x, **{"global": bool(doc["global"])})


def layer_info(doc: dict) -> pb.LayerInfo:
    """One entry of ``layers`` (the op's answer, or the model card's)."""
    return pb.LayerInfo(name=doc["name"], type=doc["type"], shape=doc["shape"],
                        receptive_field=receptive_field(doc.get("receptive_field")), stored=bool(doc["stored"]))


def inspect_layers_response(doc: dict) -> pb.InspectLayersResponse:
    shape = doc["input"]
    return pb.InspectLayersResponse(
        model=doc["model"], input_channels=shape["channels"], input_height=shape["height"],
        input_width=shape["width"], cam_layer=doc.get("cam_layer") or "", feature_layer=doc.get("feature_layer") or "",
        first_conv=doc.get("first_conv") or "", stored_layers=doc.get("stored_layers") or [],
        layers=[layer_info(d) for d in doc["layers"]], note=doc.get("note") or "")


def float16_array(doc: dict | None) -> pb.Float16Array | None:
    """``{"dtype": "float16", "shape": [...], "data": "<base64>"}`` as bytes; absent stays unset."""
    if doc is None:
        return None
    if doc.get("dtype") != "float16":
        raise ValueError(f"an array of dtype {doc.get('dtype')!r}, not float16")
    return pb.Float16Array(shape=doc["shape"], data=b64(doc, "data"))


def feature_maps_response(doc: dict) -> pb.FeatureMapsResponse:
    channels = [pb.ChannelStats(channel=c["channel"], mean=c["mean"], max=c["max"], argmax_y=c["argmax"][0],
                                argmax_x=c["argmax"][1]) for c in doc["channels"]]
    return pb.FeatureMapsResponse(
        model=doc["model"], layer=doc["layer"], shape=doc["shape"], width=doc["width"], height=doc["height"],
        channels=channels, grid_png=b64(doc, "grid"), array=float16_array(doc.get("array")),
        raw=float16_array(doc.get("raw")))


def filters_response(doc: dict) -> pb.FiltersResponse:
    return pb.FiltersResponse(model=doc["model"], layer=doc["layer"], shape=doc["shape"], mode=doc["mode"],
                              shown=doc["shown"], grid_png=b64(doc, "grid"), array=float16_array(doc.get("array")))


def top_example(doc: dict) -> pb.TopExample:
    (y, x), (x0, y0, x1, y1) = doc["position"], doc["box"]
    metadata = json.dumps(doc.get("metadata") or {}, separators=(",", ":"))
    return pb.TopExample(
        id=doc["id"], label=doc.get("label"), metadata_json=metadata, activation=doc["activation"],
        position_y=y, position_x=x, box_x0=x0, box_y0=y0, box_x1=x1, box_y1=y1,
        width=doc["width"], height=doc["height"], patch_png=b64(doc, "patch"))


def top_examples_response(doc: dict) -> pb.TopExamplesResponse:
    return pb.TopExamplesResponse(model=doc["model"], layer=doc["layer"], channel=doc["channel"], count=doc["count"],
                                  examples=[top_example(e) for e in doc["examples"]])


ROUTES: dict[str, Route] = {
    "InspectLayers": Route(ENDPOINT, inspect_layers_inputs, inspect_layers_response),
    "FeatureMaps": Route(ENDPOINT, feature_maps_inputs, feature_maps_response),
    "Filters": Route(ENDPOINT, filters_inputs, filters_response),
    "TopExamples": Route(ENDPOINT, top_examples_inputs, top_examples_response),
}
