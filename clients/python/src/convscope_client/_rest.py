"""REST adapter: a ``Call``'s convscope.v1 message rendered as TorchServe's
``POST /predictions/{model}{suffix}`` request, and the answer read back.

An image goes as the multipart part ``data`` with each parameter as a further part (no base64);
a call without an image (index delete and stats, search by vector) goes as a JSON object. Every
parameter is sent as text, the form the server parses in both cases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ._calls import Call, Operation, enum_prefix
from .errors import ConvScopeError, DeadlineExceeded, InternalError, Unavailable, Unimplemented, from_http

T = TypeVar("T")
# proto field -> REST parameter, where the names differ.
_RENAMED = {"outputs": "output", "metadata_json": "metadata"}


def f32_text(value: float) -> str:
    """The shortest decimal string that reads back as the same float32 (``0.3``, not
    ``0.30000001192092896``): what a float parameter carries over REST, so the server sees the
    same value as from the proto's ``float`` field over gRPC."""
    number = np.float32(value)
    if number == 0 or 1e-4 <= abs(number) < 1e16:
        return np.format_float_positional(number, unique=True, trim="-")
    return np.format_float_scientific(number, unique=True, trim="-")


def _text(field: FieldDescriptor, value: Any) -> str:
    if field.enum_type is not None:
        name = field.enum_type.values_by_number[value].name
        return name.removeprefix(enum_prefix(field.enum_type.name)).lower()
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return f32_text(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    return str(value)


def _flatten(message: Message, image: list[bytes], params: dict[str, str]) -> None:
    """Set fields of ``message`` into ``params`` (nested messages flattened, the image taken
    out into ``image``)."""
    for field, value in message.ListFields():
        kind = field.message_type.name if field.message_type is not None else None
        if kind == "Image":
            image.append(value.data)
        elif kind == "FeatureVector":
            params["vector"] = "[" + ",".join(f32_text(v) for v in value.values) + "]"
        elif kind is not None:
            _flatten(value, image, params)
        elif field.name != "model":
            text = ",".join(_text(field, v) for v in value) if field.is_repeated else _text(field, value)
            params[_RENAMED.get(field.name, field.name)] = text


def _reader(operation: Operation[T]) -> Callable[[dict[str, Any]], T]:
    if operation.endpoint is None or operation.from_json is None:
        raise Unimplemented(501, "Unimplemented", f"{operation.rpc} is offered by the gRPC API only: "
                            "use transport='grpc' (CLI: --transport grpc)")
    return operation.from_json


def render(call: Call[Any]) -> tuple[str, bytes | None, dict[str, str]]:
    """``call`` as (path, image bytes or None, parameters as text)."""
    operation = call.operation
    _reader(operation)  # a gRPC-only call fails here, before anything is sent
    image: list[bytes] = []
    params = {"op": operation.op} if operation.op else {}
    _flatten(call.message, image, params)
    return (f"/predictions/{quote(getattr(call.message, 'model', ''), safe='')}{operation.endpoint}",
            image[0] if image else None, params)


def request_args(call: Call[Any]) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client.post`` / ``httpx.AsyncClient.post``."""
    path, image, params = render(call)
    if image is None:
        return {"url": path, "json": params}
    if not params:
        # The image alone goes as the raw body: TorchServe's frontend and the worker skip
        # multipart parsing (half the frontend's CPU per call; BENCHMARKS.md, "Service overhead").
        return {"url": path, "content": image, "headers": {"Content-Type": "application/octet-stream"}}
    return {"url": path, "files": {"data": ("image", image, "application/octet-stream")}, "data": params}


def result(call: Call[T], response: httpx.Response) -> T:
    """The typed result of a 2xx answer; a ``ConvScopeError`` for any other."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 300:
        raise from_http(response.status_code, body, response.text)
    if not isinstance(body, dict):
        raise InternalError(502, "BadResponse", f"expected a JSON object, got {response.text[:200]!r}")
    return _reader(call.operation)(body)


def transport_error(exc: httpx.HTTPError) -> ConvScopeError:
    """A failure below HTTP. Only a refused connection is retryable: nothing was sent. A
    connection lost mid-call is not retried, since an index write may have been applied."""
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(504, "Timeout", f"no answer within the timeout ({type(exc).__name__})")
    return Unavailable(503, type(exc).__name__, str(exc) or repr(exc),
                       retryable=isinstance(exc, httpx.ConnectError))
