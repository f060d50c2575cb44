"""TorchServe's inference gRPC, as the gateway calls it: one ``Predictions`` per request.

The caller's ``authorization`` metadata is passed through unchanged (TorchServe checks the
token, the gateway keeps no key of its own for inference) and the caller's remaining deadline
becomes the upstream timeout, so a cancelled or expired call stops waiting upstream too.
TorchServe's own quirks are undone here: a failed item arrives as gRPC OK with ConvScope's
error document as the body, a missing token as PERMISSION_DENIED, an unknown model as INTERNAL.
"""

from __future__ import annotations

import json
from typing import Mapping

import grpc
from google.protobuf import empty_pb2

from ._proto import inference_pb2, inference_pb2_grpc
from .errors import GatewayError, is_error_document

MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""TorchServe's ``max_request_size`` (deploy/torchserve/config.properties): a larger request is
refused at the gateway (RESOURCE_EXHAUSTED / 413) instead of being sent on to be refused."""
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""Above TorchServe's ``max_response_size`` (20 MB): an explanation with every output fits."""


def channel_options(send: int, receive: int) -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", send), ("grpc.max_receive_message_length", receive)]


def _mapped(error: grpc.aio.AioRpcError, name: str) -> GatewayError:
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return GatewayError(grpc.StatusCode.UNAUTHENTICATED, "InvalidKeyException",
                            "missing, wrong or expired token: send metadata "
                            "'authorization: Bearer <inference key>' (var/key_file.json)", 401)
    if code == grpc.StatusCode.INTERNAL and "not found" in details.lower():
        return GatewayError(grpc.StatusCode.NOT_FOUND, "ModelNotFoundException",
                            f"TorchServe has no model {name!r}", 404)
    if code == grpc.StatusCode.INTERNAL and "has no worker to serve" in details:
        # TorchServe's gRPC answers a full job queue (or a registration with no live worker) with
        # INTERNAL where its REST API gives 503: it is an overload, and trying again later helps.
        return GatewayError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailableException",
                            f"{name}: the queue is full or no worker is up; retry later ({details})", 503)
    if code == grpc.StatusCode.UNAVAILABLE:
        return GatewayError(code, "Unavailable", f"TorchServe cannot take the request now: {details}", 503)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GatewayError(code, "DeadlineExceeded", f"{name}: the deadline passed before TorchServe answered", 504)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return GatewayError(code, "PayloadTooLarge", details, 413)
    if code == grpc.StatusCode.CANCELLED:
        return GatewayError(code, "Cancelled", "the call was cancelled", 499)
    return GatewayError(grpc.StatusCode.INTERNAL, "UpstreamError", f"TorchServe: {code.name}: {details}", 500)


class Upstream:
    """A channel to TorchServe's inference gRPC port."""

    def __init__(self, target: str, max_request: int = MAX_REQUEST_BYTES,
                 max_response: int = MAX_RESPONSE_BYTES) -> None:
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=channel_options(max_request, max_response))
        self.stub = inference_pb2_grpc.InferenceAPIsServiceStub(self.channel)

    async def predict(self, name: str, inputs: Mapping[str, bytes], authorization: str | None,
                      timeout: float | None) -> dict:
        """ConvScope's JSON answer of registration ``name``; a failure raises ``GatewayError``."""
        request = inference_pb2.PredictionsRequest(model_name=name, input=inputs)
        metadata = (("authorization", authorization),) if authorization else ()
        try:
            answer = await self.stub.Predictions(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise _mapped(error, name) from None
        try:
            doc = json.loads(answer.prediction)
        except ValueError:
            raise GatewayError(grpc.StatusCode.INTERNAL, "UpstreamError",
                               f"{name} answered something that is not JSON") from None
        if is_error_document(doc):
            raise GatewayError.from_document(doc)
        return doc

    async def ping(self, timeout: float = 5.0) -> bool:
        """TorchServe's frontend answers (a refusal for want of a token is an answer too)."""
        try:
            answer = await self.stub.Ping(empty_pb2.Empty(), timeout=timeout)
        except grpc.aio.AioRpcError as error:
            return error.code() == grpc.StatusCode.PERMISSION_DENIED
        return "healthy" in answer.health.lower()

    async def close(self) -> None:
        await self.channel.close()
