"""The Open Inference Protocol v2 (KServe / Triton "v2") face of the gateway: gRPC
``inference.GRPCInferenceService`` and its REST twin under ``/v2``, for the classification and
features registrations (``<m>`` and ``<m>-features``; OIP has no explain).

One input, ``image``: BYTES ``[N]`` (or ``[N, 1]``), each element an encoded image file. The N
images become N concurrent TorchServe calls, answered stacked in input order: classification as
``scores`` FP32 ``[N, k]``, ``classes`` INT64 ``[N, k]``, ``labels`` BYTES ``[N, k]`` (request
parameter ``top_k``, default 5); features as ``features`` FP32 ``[N, dim]`` (parameter
``normalize``, default true). gRPC answers in ``raw_output_contents``; REST in JSON ``data``, or as
binary tensors (Triton's binary tensor extension) when asked to. The caller's token is passed
through; live, ready and metadata need none. Wire layouts are in ``tensors``.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import grpc
from aiohttp import web
from google.protobuf import json_format

from . import __version__
from ._proto import open_inference_grpc_pb2 as pb, open_inference_grpc_pb2_grpc as pb_grpc
from .catalog import Catalog, ModelCard
from .errors import TYPE_KEY, GatewayError, invalid, not_found
from .tensors import (HEADER_LENGTH, IMAGE_INPUT, Input, Tensor, build_body, encode_raw, image_batch,
                      json_data, rest_inputs, shape_of, split_body)
from .upstream import Upstream

VERSION = "1"
PLATFORM = "pytorch_torchserve"
EXTENSIONS = ["binary_tensor_data"]
REST_TIMEOUT = 120.0
"""Seconds a REST infer waits for TorchServe (gRPC callers set their own deadline)."""
OUTPUTS = {"classify": (("scores", "FP32"), ("classes", "INT64"), ("labels", "BYTES")),
           "features": (("features", "FP32"),)}
PARAMETERS = {"classify": ("top_k",), "features": ("normalize",)}
"""The request parameters passed to ConvScope's endpoint (as text, ConvScope checks them)."""
PROTOCOL_PARAMETERS = ("binary_data_output", "priority", "timeout", "headers")
"""Request parameters of the protocol's clients, accepted and not passed on."""


@dataclass(frozen=True)
class InferRequest:
    """An infer request, whichever transport it came by: ``outputs`` are (name, parameters)
    pairs, None or empty for every output."""

    id: str
    parameters: dict[str, Any]
    images: list[bytes]
    outputs: list[tuple[str, dict[str, Any]]] | None


@dataclass(frozen=True)
class Target:
    """What an OIP model name stands for: the card, the endpoint and the TorchServe registration."""

    card: ModelCard
    endpoint: str
    registration: str

    def output_names(self) -> list[str]:
        return [name for name, _ in OUTPUTS[self.endpoint]]

    def metadata(self) -> dict:
        """ModelMetadata (REST JSON; the gRPC message is parsed from it)."""
        columns = {"classify": -1, "features": self.card.feature_dim}[self.endpoint]
        return {"name": self.registration, "versions": [VERSION], "platform": PLATFORM,
                "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": n, "datatype": d, "shape": [-1, columns]} for n, d in OUTPUTS[self.endpoint]]}


def _text(name: str, value: Any) -> bytes:
    """A parameter as ConvScope's endpoints take it: text."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, (int, float, str)):
        return str(value).encode()
    raise invalid(f"parameter {name!r} must be a number, a boolean or a string, not {value!r}")


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"{where} must be a boolean, not {value!r}")
    return value


def _stack(rows: list[list], name: str) -> int:
    """The common row length of N answers (the columns of an [N, k] output)."""
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise GatewayError(grpc.StatusCode.INTERNAL, "UpstreamError",
                           f"{name}: the images' answers differ in length ({sorted(widths)})")
    return widths.pop()


def output_tensors(endpoint: str, answers: list[dict]) -> list[Tensor]:
    """ConvScope's JSON answers of N images as the endpoint's OIP outputs, rows in input order."""
    n = len(answers)
    if endpoint == "features":
        rows = [a["vector"] for a in answers]
        dim = _stack(rows, "features")
        return [Tensor("features", "FP32", (n, dim), tuple(x for row in rows for x in row))]
    rows = [a["predictions"] for a in answers]
    k = _stack(rows, "predictions")
    flat = [p for row in rows for p in row]
    return [Tensor("scores", "FP32", (n, k), tuple(float(p["score"]) for p in flat)),
            Tensor("classes", "INT64", (n, k), tuple(int(p["class"]) for p in flat)),
            Tensor("labels", "BYTES", (n, k), tuple(str(p["label"]).encode() for p in flat))]


class Oip:
    """The protocol, independent of the transport."""

    def __init__(self, catalog: Catalog, upstream: Upstream) -> None:
        self.catalog, self.upstream = catalog, upstream

    def served(self) -> list[str]:
        return sorted(card.registration(e) for card in self.catalog.cards.values()
                      for e in card.endpoints if e in OUTPUTS)

    def target(self, name: str, version: str = "") -> Target:
        """The model ``name`` (version "" or "1"), or NOT_FOUND saying which models OIP serves."""
        found = self.catalog.find_registration(name)
        if found is None or found[1] not in OUTPUTS:
            raise not_found(f"OIP has no model {name!r}: it serves the classification and features "
                            f"registrations {', '.join(self.served()) or '(none)'}; explanations and "
                            "neighbours are on ConvScope's own APIs")
        if version not in ("", VERSION):
            raise not_found(f"model {name!r} has no version {version!r}: its only version is {VERSION!r}")
        card, endpoint = found
        return Target(card, endpoint, name)

    def ready(self, name: str, version: str = "") -> bool:
        return self.catalog.ready.get(self.target(name, version).registration, False)

    @staticmethod
    def server_metadata() -> dict:
        return {"name": "convscope", "version": __version__, "extensions": EXTENSIONS}

    def _upstream_inputs(self, target: Target, parameters: dict[str, Any]) -> dict[str, bytes]:
        accepted = PARAMETERS[target.endpoint]
        unknown = sorted(set(parameters) - set(accepted) - set(PROTOCOL_PARAMETERS))
        if unknown:
            raise invalid(f"unknown parameters {unknown}: {target.registration} takes {', '.join(accepted)}")
        return {name: _text(name, parameters[name]) for name in accepted if name in parameters}

    def _requested(self, target: Target, request: InferRequest) -> list[str]:
        names = target.output_names()
        if not request.outputs:
            return names
        asked = [name for name, _ in request.outputs]
        unknown = [n for n in asked if n not in names]
        if unknown or len(set(asked)) != len(asked):
            raise invalid(f"requested outputs {asked}: {target.registration} has outputs {', '.join(names)} "
                          "(each at most once)")
        for name, parameters in request.outputs:
            extra = sorted(set(parameters) - {"binary_data"})
            if extra:
                raise invalid(f"output {name!r}: unsupported parameters {extra} (only binary_data)")
        return asked

    async def infer(self, target: Target, request: InferRequest, authorization: str | None,
                    timeout: float | None) -> list[Tensor]:
        """The requested outputs of ``request``: one concurrent upstream call per image."""
        extra = self._upstream_inputs(target, request.parameters)
        wanted = self._requested(target, request)
        limit = request.parameters.get("timeout")  # Triton's, in microseconds
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            timeout = min(timeout, limit / 1e6) if timeout is not None else limit / 1e6
        calls = [self.upstream.predict(target.registration, {"data": image, **extra}, authorization, timeout)
                 for image in request.images]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        for index, answer in enumerate(answers):
            if isinstance(answer, GatewayError):
                if answer.http_status in (400, 413, 415, 422):  # this image's fault
                    raise GatewayError(answer.code, answer.type,
                                       f"input {IMAGE_INPUT!r} element {index}: {answer.message}",
                                       answer.http_status)
                raise answer
            if isinstance(answer, BaseException):
                raise answer
        tensors = {t.name: t for t in output_tensors(target.endpoint, answers)}
        return [tensors[name] for name in wanted]


# gRPC ----------------------------------------------------------------------------------------

def _value(parameter: pb.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, choice) if choice else None


def _grpc_request(message: pb.ModelInferRequest) -> InferRequest:
    if message.raw_input_contents and len(message.raw_input_contents) != len(message.inputs):
        raise invalid(f"{len(message.raw_input_contents)} raw_input_contents for {len(message.inputs)} inputs: "
                      "send one per input, in order, or none")
    inputs = []
    for index, tensor in enumerate(message.inputs):
        raw = message.raw_input_contents[index] if message.raw_input_contents else None
        elements = None if raw is not None else tuple(tensor.contents.bytes_contents)
        inputs.append(Input(tensor.name, tensor.datatype, shape_of(list(tensor.shape), f"input {tensor.name!r}"),
                            raw, elements))
    outputs = ([(o.name, {k: _value(v) for k, v in o.parameters.items()}) for o in message.outputs]
               if message.outputs else None)
    return InferRequest(message.id, {k: _value(v) for k, v in message.parameters.items()},
                        image_batch(inputs), outputs)


def _grpc_errors(method: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """End the call with the GatewayError's status when the method raises one."""
    @functools.wraps(method)
    async def wrapped(self, request, context):
        try:
            return await method(self, request, context)
        except GatewayError as error:
            await error.abort(context)
    return wrapped


class OipServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, oip: Oip) -> None:
        self.oip = oip

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=await self.oip.upstream.ping())

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.oip.catalog.all_ready())

    @_grpc_errors
    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.oip.ready(request.name, request.version))

    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**self.oip.server_metadata())

    @_grpc_errors
    async def ModelMetadata(self, request, context):
        return json_format.ParseDict(self.oip.target(request.name, request.version).metadata(),
                                     pb.ModelMetadataResponse())

    @_grpc_errors
    async def ModelInfer(self, request, context):
        target = self.oip.target(request.model_name, request.model_version)
        authorization = dict(context.invocation_metadata() or ()).get("authorization")
        tensors = await self.oip.infer(target, _grpc_request(request), authorization, context.time_remaining())
        answer = pb.ModelInferResponse(model_name=target.registration, model_version=VERSION, id=request.id)
        for tensor in tensors:
            answer.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            answer.raw_output_contents.append(encode_raw(tensor))
        return answer


def add_oip_servicer(server: grpc.aio.Server, catalog: Catalog, upstream: Upstream) -> None:
    """Serve ``inference.GRPCInferenceService`` on ``server``."""
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(OipServicer(Oip(catalog, upstream)), server)


# REST ----------------------------------------------------------------------------------------

def _rest_request(doc: dict, binary: bytes) -> InferRequest:
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid("'parameters' must be an object")
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
                isinstance(o, dict) and isinstance(o.get("name"), str) and isinstance(o.get("parameters") or {}, dict)
                for o in outputs):
            raise invalid("'outputs' must be a list of {name, parameters?}")
        outputs = [(o["name"], o.get("parameters") or {}) for o in outputs]
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise invalid("'id' must be a string")
    return InferRequest(request_id, parameters, image_batch(rest_inputs(doc, binary)), outputs)


def binary_outputs(target: Target, request: InferRequest) -> set[str]:
    """The outputs answered as binary tensors: all with ``binary_data_output``, each overridable
    by its own ``binary_data``."""
    default = _flag(request.parameters.get("binary_data_output", False), "parameter 'binary_data_output'")
    own = {name: _flag(p["binary_data"], f"output {name!r} parameter 'binary_data'")
           for name, p in request.outputs or () if "binary_data" in p}
    return {name for name in target.output_names() if own.get(name, default)}


def rest_answer(target: Target, request: InferRequest, tensors: list[Tensor], binary: set[str]) -> web.Response:
    outputs, blobs = [], []
    for tensor in tensors:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if tensor.name in binary:
            blobs.append(encode_raw(tensor))
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            entry["data"] = json_data(tensor)
        outputs.append(entry)
    doc = {"model_name": target.registration, "model_version": VERSION, "outputs": outputs}
    if request.id:
        doc["id"] = request.id
    if not blobs:
        return web.json_response(doc)
    body, length = build_body(doc, blobs)
    return web.Response(body=body, content_type="application/octet-stream", headers={HEADER_LENGTH: str(length)})


def _rest_error(error: GatewayError) -> web.Response:
    return web.json_response({"error": error.message}, status=error.http_status, headers={TYPE_KEY: error.type})


class OipRest:
    def __init__(self, oip: Oip) -> None:
        self.oip = oip

    @staticmethod
    def _model(request: web.Request) -> tuple[str, str]:
        return request.match_info["model"], request.match_info.get("version", "")

    async def live(self, request: web.Request) -> web.Response:
        live = await self.oip.upstream.ping()
        return web.json_response({"live": live}, status=200 if live else 400)

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.oip.catalog.all_ready()
        return web.json_response({"ready": ready}, status=200 if ready else 400)

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(self.oip.server_metadata())

    async def model_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(self.oip.target(*self._model(request)).metadata())

    async def model_ready(self, request: web.Request) -> web.Response:
        ready = self.oip.ready(*self._model(request))
        return web.json_response({"name": request.match_info["model"], "ready": ready}, status=200 if ready else 400)

    async def infer(self, request: web.Request) -> web.Response:
        target = self.oip.target(*self._model(request))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as error:
            raise GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, "PayloadTooLarge", error.text or "body too large",
                               413) from None
        doc, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        infer_request = _rest_request(doc, binary)
        as_binary = binary_outputs(target, infer_request)
        tensors = await self.oip.infer(target, infer_request, request.headers.get("Authorization"), REST_TIMEOUT)
        return rest_answer(target, infer_request, tensors, as_binary)


def _rest_errors(handler: Callable[[web.Request], Awaitable[web.Response]]):
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except GatewayError as error:
            return _rest_error(error)
    return wrapped


def rest_routes(catalog: Catalog, upstream: Upstream) -> list[web.RouteDef]:
    """The ``/v2`` routes of OIP REST, for the gateway's aiohttp app."""
    api = OipRest(Oip(catalog, upstream))
    model = "/v2/models/{model}"
    routes = [web.get("/v2/health/live", api.live), web.get("/v2/health/ready", api.ready),
              web.get("/v2", api.server_metadata)]
    for base in (model, model + "/versions/{version}"):
        routes += [web.get(base, api.model_metadata), web.get(base + "/ready", api.model_ready),
                   web.post(base + "/infer", api.infer)]
    return [web.RouteDef(r.method, r.path, _rest_errors(r.handler), r.kwargs) for r in routes]
