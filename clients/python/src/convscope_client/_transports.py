"""The four ways a call travels: REST or gRPC, blocking or asyncio. Each is a few lines of I/O
around the pure adapters (``_rest.py``; the operation's proto converter for gRPC), and each
turns its failures into the one ``ConvScopeError`` hierarchy."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import grpc
import grpc.aio
import httpx

from . import _rest
from ._calls import Call
from ._proto.convscope_pb2_grpc import ConvScopeStub
from .errors import ConvScopeError, from_grpc

T = TypeVar("T")
# Maps with every output (two PNGs and a float16 array of a 1024-px side) pass 4 MB, gRPC's
# default; requests carry an image of at most 8 MB. A refused connection is retried by our own
# policy (milliseconds apart): the channel's first reconnect must not wait gRPC's default 1 s.
GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 16 << 20),
                ("grpc.initial_reconnect_backoff_ms", 100)]
TRANSPORTS = ("rest", "grpc")


class Transport(Protocol):
    def send(self, call: Call[T]) -> T: ...
    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, call: Call[T]) -> T: ...
    async def close(self) -> None: ...


def _bearer(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


class RestTransport:
    def __init__(self, url: str, token: str | None, timeout: float | None) -> None:
        self._http = httpx.Client(base_url=url, headers=_bearer(token), timeout=timeout)

    def send(self, call: Call[T]) -> T:
        args = _rest.request_args(call)
        try:
            response = self._http.post(**args)
        except httpx.HTTPError as exc:
            raise _rest.transport_error(exc) from exc
        return _rest.result(call, response)

    def close(self) -> None:
        self._http.close()


class AsyncRestTransport:
    def __init__(self, url: str, token: str | None, timeout: float | None) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers=_bearer(token), timeout=timeout)

    async def send(self, call: Call[T]) -> T:
        args = _rest.request_args(call)
        try:
            response = await self._http.post(**args)
        except httpx.HTTPError as exc:
            raise _rest.transport_error(exc) from exc
        return _rest.result(call, response)

    async def close(self) -> None:
        await self._http.aclose()


def grpc_error(exc: grpc.RpcError) -> ConvScopeError:
    """A gRPC status (blocking or asyncio call) as a ``ConvScopeError``."""
    code: Any = getattr(exc, "code", lambda: None)()
    details: str | None = getattr(exc, "details", lambda: None)()
    trailing = getattr(exc, "trailing_metadata", lambda: None)() or ()
    return from_grpc(code.name if code is not None else "UNKNOWN", details,
                     {k: v for k, v in trailing if isinstance(v, str)})


class GrpcTransport:
    def __init__(self, target: str, token: str | None, timeout: float | None) -> None:
        self._channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        self._stub = ConvScopeStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata, self._timeout = _bearer(token), timeout

    def send(self, call: Call[T]) -> T:
        rpc = getattr(self._stub, call.operation.rpc)
        try:
            answer = rpc(call.message, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise grpc_error(exc) from None
        return call.operation.from_proto(answer)

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    """The asyncio channel is opened on the first call, inside the event loop that uses it."""

    def __init__(self, target: str, token: str | None, timeout: float | None) -> None:
        self._target, self._metadata, self._timeout = target, _bearer(token), timeout
        self._channel: grpc.aio.Channel | None = None

    def _stub(self) -> ConvScopeStub:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=GRPC_OPTIONS)
        return ConvScopeStub(self._channel)  # type: ignore[no-untyped-call]

    async def send(self, call: Call[T]) -> T:
        rpc = getattr(self._stub(), call.operation.rpc)
        try:
            answer = await rpc(call.message, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise grpc_error(exc) from None
        return call.operation.from_proto(answer)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)


def address(transport: str, url: str) -> str:
    """REST: a base URL (``http://`` added when no scheme is given); gRPC: ``host:port``."""
    if transport == "rest":
        return url if "://" in url else f"http://{url}"
    return url.removeprefix("grpc://")
