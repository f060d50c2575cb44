"""The typed ``convscope.v1.ConvScope`` service: each RPC is one TorchServe ``Predictions`` call.

A request becomes the input map of the registration of its endpoint (the image under ``data``,
each set parameter under its own name, as text, exactly as the REST multipart form carries it),
and ConvScope's JSON answer becomes the response message. Only fields the caller set are sent:
the engine rejects parameters that do not apply to a method, and applies its own defaults.
Enums are checked here (a value outside the enum is INVALID_ARGUMENT); every other range check
is the engine's, so REST, TorchServe gRPC and this API accept and refuse exactly the same input.
"""

from __future__ import annotations

import asyncio
import json

import grpc
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc
from google.protobuf.message import Message

from . import inspection, projection
from .catalog import Catalog, ModelCard
from .errors import GatewayError, invalid
from .routing import Route, b64, enum_list_text, enum_text, image_inputs, optional_inputs
from .upstream import Upstream

MAX_TIMEOUT_S = 600.0
"""An upstream call without a caller deadline waits at most this long (the CAM response timeout)."""


def authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


def upstream_timeout(context: grpc.aio.ServicerContext) -> float:
    remaining = context.time_remaining()
    return MAX_TIMEOUT_S if remaining is None else max(0.0, min(remaining, MAX_TIMEOUT_S))


def _rendering(rendering: pb.Rendering, inputs: dict[str, bytes]) -> None:
    outputs = enum_list_text(pb.Output, rendering.outputs, "OUTPUT_", "rendering.outputs", "heatmap")
    if outputs:
        inputs["output"] = outputs
    polarity = enum_text(pb.Polarity, rendering.polarity, "POLARITY_", "rendering.polarity")
    if polarity:
        inputs["polarity"] = polarity.encode()
    optional_inputs(rendering, inputs, "clip_low", "clip_high", "alpha")


def _probe(probe: pb.Probe, inputs: dict[str, bytes]) -> None:
    kind = probe.WhichOneof("kind")
    if kind == "image":
        inputs.update(image_inputs(probe.image))
    elif kind == "vector":
        inputs["vector"] = json.dumps(list(probe.vector.values)).encode()


# --- requests -> TorchServe inputs ------------------------------------------------------------

def classify_inputs(r: pb.ClassifyRequest) -> dict[str, bytes]:
    inputs = image_inputs(r.image)
    optional_inputs(r, inputs, "top_k")
    return inputs


def features_inputs(r: pb.FeaturesRequest) -> dict[str, bytes]:
    inputs = image_inputs(r.image)
    optional_inputs(r, inputs, "normalize")
    return inputs


def saliency_inputs(r: pb.SaliencyRequest) -> dict[str, bytes]:
    inputs = image_inputs(r.image)
    method = enum_text(pb.SaliencyMethod, r.method, "SALIENCY_METHOD_", "method")
    inputs["method"] = (method or "gradient").encode()
    baseline = enum_text(pb.Baseline, r.baseline, "BASELINE_", "baseline")
    if baseline:
        inputs["baseline"] = baseline.encode()
    optional_inputs(r, inputs, "target", "samples", "noise", "seed", "steps", "window", "stride", "fill",
                    "num_features", "positive_only", "segments")
    _rendering(r.rendering, inputs)
    return inputs


def cam_inputs(r: pb.CamRequest) -> dict[str, bytes]:
    inputs = image_inputs(r.image)
    inputs["method"] = (enum_text(pb.CamMethod, r.method, "CAM_METHOD_", "method") or "gradcam").encode()
    if r.layer:
        inputs["layer"] = r.layer.encode()
    optional_inputs(r, inputs, "target")
    _rendering(r.rendering, inputs)
    return inputs


def neighbours_inputs(r: pb.NeighboursRequest) -> dict[str, bytes]:
    inputs: dict[str, bytes] = {}
    _probe(r.probe, inputs)
    optional_inputs(r, inputs, "k")
    return inputs


def index_add_inputs(r: pb.IndexAddRequest) -> dict[str, bytes]:
    inputs = {"op": b"add", "id": r.id.encode()}
    _probe(r.probe, inputs)
    optional_inputs(r, inputs, "label")
    if r.metadata_json:
        inputs["metadata"] = r.metadata_json.encode()
    return inputs


def index_delete_inputs(r: pb.IndexDeleteRequest) -> dict[str, bytes]:
    return {"op": b"delete", "id": r.id.encode()}


def index_stats_inputs(_r: pb.IndexStatsRequest) -> dict[str, bytes]:
    return {"op": b"stats"}


# --- ConvScope's JSON -> responses ------------------------------------------------------------

def explanation(doc: dict) -> pb.Explanation:
    array = doc.get("array") or {}
    return pb.Explanation(
        model=doc["model"], method=doc["method"], target=doc["target"], label=doc["label"], score=doc["score"],
        map=pb.ExplanationMap(width=doc["width"], height=doc["height"], heatmap_png=b64(doc, "heatmap"),
                              overlay_png=b64(doc, "overlay"), array_f16=b64(array, "data")))


def classify_response(doc: dict) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(model=doc["model"], predictions=[
        pb.Prediction(class_index=p["class"], label=p["label"], score=p["score"]) for p in doc["predictions"]])


def features_response(doc: dict) -> pb.FeaturesResponse:
    return pb.FeaturesResponse(model=doc["model"], layer=doc["layer"], vector=doc["vector"])


def neighbours_response(doc: dict) -> pb.NeighboursResponse:
    return pb.NeighboursResponse(model=doc["model"], neighbours=[
        pb.Neighbour(id=n["id"], distance=n["distance"], label=n.get("label"),
                     metadata_json=json.dumps(n.get("metadata") or {}, separators=(",", ":")))
        for n in doc["neighbours"]])


STATS_FIELDS = ("model", "op", "count", "dim", "metric", "index_type", "backend")


def index_stats_response(doc: dict) -> pb.IndexStatsResponse:
    details = {k: v for k, v in doc.items() if k not in STATS_FIELDS}
    return pb.IndexStatsResponse(model=doc["model"], count=doc["count"], dim=doc["dim"], metric=doc["metric"],
                                 index_type=doc["index_type"], backend=doc["backend"],
                                 details_json=json.dumps(details, separators=(",", ":")))


ROUTES: dict[str, Route] = {
    "Classify": Route("classify", classify_inputs, classify_response),
    "Features": Route("features", features_inputs, features_response),
    "Saliency": Route("saliency", saliency_inputs, lambda d: pb.SaliencyResponse(explanation=explanation(d))),
    "Cam": Route("cam", cam_inputs, lambda d: pb.CamResponse(explanation=explanation(d))),
    "Neighbours": Route("neighbours", neighbours_inputs, neighbours_response),
    "IndexAdd": Route("neighbours", index_add_inputs, lambda d: pb.IndexAddResponse(
        model=d["model"], id=d["id"], created=d["created"], count=d["count"])),
    "IndexDelete": Route("neighbours", index_delete_inputs, lambda d: pb.IndexDeleteResponse(
        model=d["model"], id=d["id"], count=d["count"])),
    "IndexStats": Route("neighbours", index_stats_inputs, index_stats_response),
    **inspection.ROUTES,  # InspectLayers, FeatureMaps, Filters, TopExamples
    **projection.ROUTES,  # Project
}
PIPELINE_RPCS = {"classify": "Classify", "features": "Features", "saliency": "Saliency", "cam": "Cam",
                 "neighbours": "Neighbours", "inspect_layers": "InspectLayers", "feature_maps": "FeatureMaps",
                 "filters": "Filters", "top_examples": "TopExamples"}
"""Which unary RPC answers each kind of pipeline request (the oneof's field names)."""


def model_info(card: ModelCard) -> pb.ModelInfo:
    """The card as ``ModelInfo``; the inspect fields stay empty for an archive built before them."""
    return pb.ModelInfo(model=card.name, description=card.description, num_classes=card.num_classes,
                        feature_dim=card.feature_dim, endpoints=list(card.endpoints),
                        input_height=card.input_height, input_width=card.input_width,
                        layers=[inspection.layer_info(d) for d in card.layers], cam_layer=card.cam_layer,
                        feature_layer=card.feature_layer, first_conv=card.first_conv,
                        stored_layers=list(card.stored_layers), input_channels=card.input_channels)


class ConvScopeService(pb_grpc.ConvScopeServicer):
    """``convscope.v1.ConvScope`` over TorchServe: stateless apart from the catalog."""

    def __init__(self, catalog: Catalog, upstream: Upstream, pipeline_window: int = 16) -> None:
        self.catalog, self.upstream, self.pipeline_window = catalog, upstream, pipeline_window

    async def answer(self, rpc: str, request: Message, token: str | None, timeout: float) -> Message:
        """The response of unary ``rpc``, or a ``GatewayError``."""
        route = ROUTES[rpc]
        name = self.catalog.registration(request.model, route.endpoint)
        if not token:
            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, "InvalidKeyException",
                               "no token: send metadata 'authorization: Bearer <key>'", 401)
        doc = await self.upstream.predict(name, route.inputs(request), token, timeout)
        try:
            return route.response(doc)
        except (KeyError, TypeError, ValueError) as error:
            raise GatewayError(grpc.StatusCode.INTERNAL, "UpstreamError",
                               f"{name} answered an unexpected document ({error!r})") from None

    async def _unary(self, rpc: str, request: Message, context: grpc.aio.ServicerContext) -> Message:
        try:
            return await self.answer(rpc, request, authorization(context), upstream_timeout(context))
        except GatewayError as error:
            await error.abort(context)

    async def ListModels(self, request, context):
        return pb.ListModelsResponse(models=[model_info(c) for _, c in sorted(self.catalog.cards.items())])

    async def ModelMetadata(self, request, context):
        try:
            return pb.ModelMetadataResponse(info=model_info(self.catalog.card(request.model)))
        except GatewayError as error:
            await error.abort(context)

    async def _pipeline_item(self, item: pb.PipelineRequest, token: str | None, timeout: float) -> pb.PipelineResponse:
        kind = item.WhichOneof("request")
        try:
            if kind is None:
                raise invalid(f"a pipeline request needs one of {', '.join(PIPELINE_RPCS)}")
            answer = await self.answer(PIPELINE_RPCS[kind], getattr(item, kind), token, timeout)
            return pb.PipelineResponse(key=item.key, **{kind: answer})
        except GatewayError as error:
            return pb.PipelineResponse(key=item.key, error=pb.PipelineError(
                code=error.code.value[0], type=error.type, message=error.message))

    async def Pipeline(self, request_iterator, context):
        """Requests run concurrently (at most ``pipeline_window`` at once); each answer is sent
        as it finishes, with its request's key. One failed request answers an error alone."""
        token, timeout = authorization(context), upstream_timeout(context)
        window = asyncio.Semaphore(self.pipeline_window)
        answers: asyncio.Queue = asyncio.Queue(maxsize=self.pipeline_window)
        tasks: set[asyncio.Task] = set()

        async def one(item: pb.PipelineRequest) -> None:
            try:
                await answers.put(await self._pipeline_item(item, token, timeout))
            finally:
                window.release()

        async def read() -> None:
            try:
                async for item in request_iterator:
                    await window.acquire()
                    task = asyncio.create_task(one(item))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                await asyncio.gather(*tasks)
            finally:
                await answers.put(None)  # the end, or the reader's failure, which `await reader` raises

        reader = asyncio.create_task(read())
        try:
            while (answer := await answers.get()) is not None:
                yield answer
            await reader
        finally:
            for task in (reader, *tasks):
                task.cancel()


def _unary_rpc(rpc: str):
    async def call(self: ConvScopeService, request: Message, context: grpc.aio.ServicerContext) -> Message:
        return await self._unary(rpc, request, context)

    call.__name__ = call.__qualname__ = rpc
    call.__doc__ = f"``{rpc}``: one call to the ``{ROUTES[rpc].endpoint}`` registration of ``request.model``."
    return call


for _rpc in ROUTES:  # Classify ... IndexStats, InspectLayers, FeatureMaps, Filters, TopExamples
    setattr(ConvScopeService, _rpc, _unary_rpc(_rpc))
