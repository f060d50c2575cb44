"""One error type for the gateway, and how ConvScope's HTTP-style errors map to gRPC codes.

Every error a caller sees carries the gRPC status, ConvScope's error type (``InvalidImage``,
``NotFound``, ...) and a message that says what was wrong; the type and the HTTP-equivalent
status also travel as trailing metadata (``convscope-error-type``, ``convscope-error-code``),
so a client can raise the same exception class whichever transport it used.
"""

from __future__ import annotations

import grpc

TYPE_KEY = "convscope-error-type"
CODE_KEY = "convscope-error-code"

# The HTTP status of ConvScope's (and TorchServe's) error documents -> the gRPC code.
HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# And back, for the REST face (OIP) and for a status that arrived as a gRPC code.
GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.CANCELLED: 499,
}


class GatewayError(Exception):
    """A request that failed: its gRPC code, ConvScope's error type and the message."""

    def __init__(self, code: grpc.StatusCode, type_: str, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code, self.type, self.message = code, type_, message
        self.http_status = http_status or GRPC_TO_HTTP.get(code, 500)

    @classmethod
    def from_document(cls, doc: dict) -> "GatewayError":
        """ConvScope's error document ``{"code": 400, "type": ..., "message": ...}``."""
        status = int(doc["code"])
        return cls(HTTP_TO_GRPC.get(status, grpc.StatusCode.INTERNAL), str(doc.get("type", "Error")),
                   str(doc.get("message", "")), status)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((TYPE_KEY, self.type), (CODE_KEY, str(self.http_status)))

    async def abort(self, context: grpc.aio.ServicerContext):
        """End the RPC with this status (raises)."""
        context.set_trailing_metadata(self.trailing_metadata())
        await context.abort(self.code, f"{self.type}: {self.message}")


def invalid(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "BadRequest", message, 400)


def not_found(message: str, type_: str = "ModelNotFoundException") -> GatewayError:
    return GatewayError(grpc.StatusCode.NOT_FOUND, type_, message, 404)


def is_error_document(doc: object) -> bool:
    """TorchServe's gRPC answers a failed item with OK and the error document as its body."""
    return (isinstance(doc, dict) and set(doc) == {"code", "type", "message"}
            and isinstance(doc["code"], int) and doc["code"] >= 400)
