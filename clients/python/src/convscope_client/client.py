"""``Client`` (blocking) and ``AsyncClient`` (asyncio): one interface over two transports.

    with Client("http://127.0.0.1:8080") as client:                 # REST (TorchServe)
        top = client.classify("digits", "seven.png", top_k=3)
    async with AsyncClient("127.0.0.1:50051", transport="grpc") as client:  # typed gRPC
        cam = await client.cam("efficientnet_lite0", "cat.jpg", method="gradcam_pp",
                               outputs=("heatmap", "overlay"))
        maps = await client.feature_maps("efficientnet_lite0", "cat.jpg", top=8, outputs="grid,raw")

Each method's parameters and documentation are those of its builder in ``_calls``: the method
builds the call once (the same for both transports), then sends it with retries.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from . import _calls
from ._calls import Call
from ._retry import RetryPolicy, run, run_async
from ._transports import (
    TRANSPORTS,
    AsyncGrpcTransport,
    AsyncRestTransport,
    AsyncTransport,
    GrpcTransport,
    RestTransport,
    Transport,
    address,
)
from .errors import Unauthenticated

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URLS = {"rest": "http://127.0.0.1:8080", "grpc": "127.0.0.1:50051"}
TOKEN_ENV, KEY_FILE_ENV = "CONVSCOPE_TOKEN", "CONVSCOPE_KEY_FILE"
DEFAULT_KEY_FILE = "var/key_file.json"


def resolve_token(token: str | None = None) -> str | None:
    """The inference token: ``token``, else ``$CONVSCOPE_TOKEN``, else ``inference.key`` of the
    key file named by ``$CONVSCOPE_KEY_FILE`` (TorchServe's ``key_file.json``), else of
    ``var/key_file.json`` in the working directory (what ``make serve`` writes, for a client run
    from the repository), else None."""
    if token:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    path = os.environ.get(KEY_FILE_ENV) or (DEFAULT_KEY_FILE if Path(DEFAULT_KEY_FILE).is_file() else None)
    if not path:
        return None
    try:
        return str(json.loads(Path(path).read_text())["inference"]["key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated(401, "KeyFileError", f"cannot read inference.key from {path} "
                              f"(${KEY_FILE_ENV}): {exc!r}") from None


class _Settings:
    """Constructor arguments shared by both clients, checked and resolved once."""

    def __init__(self, url_or_target: str | None = None, transport: str = "rest",
                 token: str | None = None, timeout: float | None = 60.0, retries: int = 3,
                 backoff: float = 0.2) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self.transport = transport
        """``rest`` (TorchServe's REST API) or ``grpc`` (the typed convscope.v1 gateway)."""
        self.url = address(transport, url_or_target or DEFAULT_URLS[transport])
        """REST base URL or gRPC ``host:port``."""
        self.timeout = timeout
        """Seconds per attempt (HTTP timeout or gRPC deadline); None waits forever."""
        self._token = resolve_token(token)
        self._policy = RetryPolicy(retries, backoff)
        self._open()

    def _open(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, transport={self.transport!r})"


def _documented(method: F, build: Callable[..., Any]) -> F:
    """``method`` with the name, docstring and parameters of ``build`` (plus ``self``), for
    help() and editors."""
    signature = inspect.signature(build)
    self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_, *signature.parameters.values()], return_annotation=inspect.Signature.empty)
    return method


def _blocking(build: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = build(*args, **kwargs)
        return run(lambda: self._transport.send(call), self._policy)
    return _documented(method, build)


def _awaitable(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = build(*args, **kwargs)
        return await run_async(lambda: self._transport.send(call), self._policy)
    return _documented(method, build)


class Client(_Settings):
    """Blocking client. ``Client(url_or_target=None, transport="rest"|"grpc", token=None,
    timeout=60.0, retries=3, backoff=0.2)``; use as a context manager or call ``close()``."""

    _transport: Transport

    def _open(self) -> None:
        kind = RestTransport if self.transport == "rest" else GrpcTransport
        self._transport = kind(self.url, self._token, self.timeout)

    classify = _blocking(_calls.classify)
    features = _blocking(_calls.features)
    saliency = _blocking(_calls.saliency)
    cam = _blocking(_calls.cam)
    neighbours = _blocking(_calls.neighbours)
    index_add = _blocking(_calls.index_add)
    index_delete = _blocking(_calls.index_delete)
    index_stats = _blocking(_calls.index_stats)
    project = _blocking(_calls.project)
    inspect_layers = _blocking(_calls.inspect_layers)
    feature_maps = _blocking(_calls.feature_maps)
    filters = _blocking(_calls.filters)
    top_examples = _blocking(_calls.top_examples)
    list_models = _blocking(_calls.list_models)
    model_metadata = _blocking(_calls.model_metadata)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Settings):
    """asyncio client: the same methods as ``Client``, as coroutines. Use ``async with`` or
    ``await close()``."""

    _transport: AsyncTransport

    def _open(self) -> None:
        kind = AsyncRestTransport if self.transport == "rest" else AsyncGrpcTransport
        self._transport = kind(self.url, self._token, self.timeout)

    classify = _awaitable(_calls.classify)
    features = _awaitable(_calls.features)
    saliency = _awaitable(_calls.saliency)
    cam = _awaitable(_calls.cam)
    neighbours = _awaitable(_calls.neighbours)
    index_add = _awaitable(_calls.index_add)
    index_delete = _awaitable(_calls.index_delete)
    index_stats = _awaitable(_calls.index_stats)
    project = _awaitable(_calls.project)
    inspect_layers = _awaitable(_calls.inspect_layers)
    feature_maps = _awaitable(_calls.feature_maps)
    filters = _awaitable(_calls.filters)
    top_examples = _awaitable(_calls.top_examples)
    list_models = _awaitable(_calls.list_models)
    model_metadata = _awaitable(_calls.model_metadata)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
