"""One exception hierarchy for both transports.

Every failure a caller can see is a ``ConvScopeError`` carrying the HTTP-equivalent ``status``,
ConvScope's (or TorchServe's) error ``type`` name and a ``message``; over gRPC also the status
code's name (``grpc_code``). The subclass depends only on what went wrong, never on the
transport: a corrupt image is ``InvalidArgument`` over REST (400) and over gRPC
(INVALID_ARGUMENT), so ``except InvalidArgument`` works the same for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

# Trailing metadata the gateway attaches to every error status.
TYPE_KEY = "convscope-error-type"
CODE_KEY = "convscope-error-code"


class ConvScopeError(Exception):
    """A failed call. ``status``: HTTP-equivalent code; ``type``: the server's error type
    (``InvalidImage``, ``ModelNotFoundException`` ...) or, for failures on the client side, a
    name for what happened (``ConnectError``, ``Timeout``); ``grpc_code``: e.g.
    ``"INVALID_ARGUMENT"`` when the call went over gRPC, else None."""

    def __init__(self, status: int, type: str, message: str, grpc_code: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(f"{type} ({status}): {message}")
        self.status, self.type, self.message, self.grpc_code = status, type, message, grpc_code
        self.retryable = retryable
        """True only where trying again is safe and may help: HTTP 503, gRPC UNAVAILABLE, or a
        connection that was refused before anything was sent."""


class InvalidArgument(ConvScopeError):
    """Bad input: a corrupt image, an unknown or out-of-range parameter, one that does not
    apply to the method (HTTP 400/415, INVALID_ARGUMENT)."""


class NotFound(ConvScopeError):
    """An unknown model, layer or index id (HTTP 404, NOT_FOUND)."""


class Unauthenticated(ConvScopeError):
    """A missing, wrong or expired token (TorchServe's 400 ``InvalidKeyException``,
    UNAUTHENTICATED, PERMISSION_DENIED)."""


class ResourceExhausted(ConvScopeError):
    """An image or body over the server's limits, or too many requests (HTTP 413/429,
    RESOURCE_EXHAUSTED)."""


class Unavailable(ConvScopeError):
    """The server cannot answer now: no worker, a full queue, an index that cannot take the
    write, or no server at all (HTTP 502/503, UNAVAILABLE, connection refused)."""


class DeadlineExceeded(ConvScopeError):
    """The call took longer than the client's timeout (HTTP 408/504, DEADLINE_EXCEEDED).
    Never retried: the server may still be working on it."""


class Unimplemented(ConvScopeError, NotImplementedError):
    """The server, or this transport, does not offer the call (HTTP 405/501, UNIMPLEMENTED),
    e.g. ``list_models`` over REST."""


class InternalError(ConvScopeError):
    """A bug or an outage on the server (HTTP 500, INTERNAL, and anything unmapped)."""


_BY_TYPE: dict[str, type[ConvScopeError]] = {"InvalidKeyException": Unauthenticated}
_BY_GRPC: dict[str, type[ConvScopeError]] = {
    "INVALID_ARGUMENT": InvalidArgument, "OUT_OF_RANGE": InvalidArgument,
    "FAILED_PRECONDITION": InvalidArgument, "NOT_FOUND": NotFound,
    "UNAUTHENTICATED": Unauthenticated, "PERMISSION_DENIED": Unauthenticated,
    "RESOURCE_EXHAUSTED": ResourceExhausted, "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded, "UNIMPLEMENTED": Unimplemented,
}
_BY_STATUS: dict[int, type[ConvScopeError]] = {
    400: InvalidArgument, 415: InvalidArgument, 422: InvalidArgument, 404: NotFound,
    401: Unauthenticated, 403: Unauthenticated, 413: ResourceExhausted, 429: ResourceExhausted,
    502: Unavailable, 503: Unavailable, 408: DeadlineExceeded, 504: DeadlineExceeded,
    405: Unimplemented, 501: Unimplemented,
}
# HTTP-equivalent status of a gRPC code when the server did not say (client-side failures).
_GRPC_STATUS = {"INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400, "FAILED_PRECONDITION": 400,
                "NOT_FOUND": 404, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
                "UNIMPLEMENTED": 501, "CANCELLED": 499}


def make_error(status: int, type: str, message: str, grpc_code: str | None = None,
               retryable: bool = False) -> ConvScopeError:
    """The one place a failure becomes a class: by error type where it is decisive
    (TorchServe's token error is a 400), then by gRPC code, then by HTTP status."""
    cls = (_BY_TYPE.get(type) or _BY_GRPC.get(grpc_code or "")
           or _BY_STATUS.get(status) or InternalError)
    return cls(status, type, message, grpc_code, retryable)


def from_http(status: int, body: object, text: str = "") -> ConvScopeError:
    """An error answer over REST: ``body`` is the parsed JSON (``{"code", "type", "message"}``
    for ConvScope's and TorchServe's own errors), ``text`` the raw body for anything else."""
    doc: Mapping[str, object] = body if isinstance(body, Mapping) else {}
    type_ = str(doc.get("type") or _reason(status))
    message = str(doc.get("message") or text[:500] or _reason(status))
    return make_error(status, type_, message, retryable=status == 503)


def from_grpc(code: str, details: str | None, trailing: Mapping[str, str]) -> ConvScopeError:
    """An error status over gRPC: ``code`` is the status code's name (``"NOT_FOUND"``),
    ``trailing`` the trailing metadata, where the gateway puts the error type and the
    HTTP-equivalent status."""
    status = _int(trailing.get(CODE_KEY)) or _GRPC_STATUS.get(code, 500)
    type_ = trailing.get(TYPE_KEY) or "".join(w.capitalize() for w in code.split("_"))
    message = (details or code).removeprefix(f"{type_}: ")  # the gateway's details repeat the type
    return make_error(status, type_, message, code, retryable=code == "UNAVAILABLE")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        return f"HTTP{status}"


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None
