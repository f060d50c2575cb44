"""Edge mode: one shared key in front of every face of the gateway, TorchServe's own keys behind.

TorchServe 0.12 writes new random keys to ``key_file.json`` at every start and cannot load keys
from anywhere, so replicas behind one Service would each want a different key, and no key can
come from a Kubernetes Secret. With ``--edge-key-file`` (a file holding the shared key, e.g. a
mounted Secret) the gateway is the only listener a caller reaches, and:

* every call that needs a token (the same calls as without edge mode: health, reflection and
  model descriptions need none) must carry ``authorization: Bearer <shared key>``, compared in
  constant time; a missing or wrong key is UNAUTHENTICATED / HTTP 401, and TorchServe never
  sees the caller's key. The key file holds one key a line (two while a rotation rolls out) and
  is re-read when it changes (an updated Secret);
* the gateway calls TorchServe with TorchServe's inference key from its key file, re-read when
  the file changes or TorchServe refuses the key, and renews TorchServe's inference and
  management keys through its token API before they expire (``token_expiration_min``);
* the HTTP port also proxies TorchServe's inference REST (``/predictions``, ``/explanations``,
  ``/ping``), and the gRPC port serves TorchServe's ``InferenceAPIsService`` (Ping, Predictions)
  as a pass-through, so all three faces are behind the shared key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Mapping, TypeVar

import aiohttp
import grpc
from aiohttp import web

from ._proto import inference_pb2, inference_pb2_grpc
from .errors import GatewayError
from .keys import TorchServeKeys, WatchedFile, key_refused
from .typed import MAX_TIMEOUT_S, authorization, upstream_timeout
from .upstream import Upstream

if TYPE_CHECKING:
    from .server import GatewayConfig

log = logging.getLogger("convscope.gateway.edge")
T = TypeVar("T")

PASS_THROUGH_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceAPIsService"].full_name
MIN_KEY_CHARS = 16
"""A shorter shared key is refused at start: it would be guessable."""
CHUNK_BYTES = 64 * 1024
REQUEST_HEADERS = ("Content-Type", "Content-Length")
"""The caller's headers TorchServe gets; the caller's Authorization never goes upstream."""
RESPONSE_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding")
REFUSED_TYPE = "InvalidKeyException"
"""TorchServe's REST refusal of a key: 400 with this type (its gRPC says PERMISSION_DENIED)."""


@dataclass(frozen=True)
class EdgeConfig:
    key_file: Path
    """The shared keys, one a line (at least 16 characters each), e.g. mounted from a Secret."""
    inference_url: str = "http://127.0.0.1:8080"
    """TorchServe's inference REST, proxied on the gateway's HTTP port."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = EdgeConfig(Path())
    parser.add_argument("--edge-key-file", type=Path,
                        help="edge mode: callers must send this file's shared key; TorchServe's REST and gRPC "
                             "are served here too (docs/deploy.md)")
    parser.add_argument("--inference-url", default=d.inference_url,
                        help="TorchServe's inference REST, proxied in edge mode")


def config_from(args: argparse.Namespace) -> EdgeConfig | None:
    return EdgeConfig(args.edge_key_file, args.inference_url) if args.edge_key_file else None


def _digest(text: str) -> bytes:
    # Equal-length digests: compare_digest's time then depends on neither key's length.
    return hashlib.sha256(text.encode()).digest()


def parse_shared_keys(text: str) -> tuple[bytes, ...]:
    """The SHA-256 of each key in ``text`` (one a line, blank lines skipped); only the digests
    are kept in memory."""
    keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys or any(len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key) for key in keys):
        raise ValueError(f"shared keys are one a line, each one word of at least {MIN_KEY_CHARS} characters")
    return tuple(_digest(key) for key in keys)


def unauthenticated(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.UNAUTHENTICATED, REFUSED_TYPE, message, 401)


class SharedKey:
    """The key every caller presents in edge mode (any of the file's keys)."""

    def __init__(self, path: Path) -> None:
        self.file = WatchedFile(path, parse_shared_keys)
        if self.file.value() is None:
            raise SystemExit(f"convscope-gateway: {path}: no usable shared key "
                             f"(one a line, each one word of at least {MIN_KEY_CHARS} characters)")

    def check(self, header: str | None) -> None:
        """Pass when ``header`` is ``Bearer <a shared key>``; else raise UNAUTHENTICATED (401)."""
        scheme, _, presented = (header or "").strip().partition(" ")
        digest = _digest(presented.strip())
        # Every key is compared, none skipped: the time taken says nothing about which matched.
        matches = [hmac.compare_digest(digest, expected) for expected in self.file.value() or ()]
        if not (any(matches) and scheme.lower() == "bearer"):
            raise unauthenticated("missing or wrong key: send 'Authorization: Bearer <key>' "
                                  "with this service's key")


def _grpc_refusal(error: BaseException) -> bool:
    return isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.PERMISSION_DENIED


def _mapped_refusal(error: BaseException) -> bool:
    # Upstream maps TorchServe's PERMISSION_DENIED to UNAUTHENTICATED (upstream._mapped).
    return isinstance(error, GatewayError) and error.code == grpc.StatusCode.UNAUTHENTICATED


class EdgeUpstream(Upstream):
    """``Upstream`` that checks the caller's shared key and calls with TorchServe's key: the typed
    API and OIP (gRPC and REST) get edge mode where they use a token, unchanged."""

    def __init__(self, target: str, max_request: int, max_response: int, shared: SharedKey,
                 keys: TorchServeKeys) -> None:
        super().__init__(target, max_request, max_response)
        self.shared, self.keys = shared, keys

    async def predict(self, name: str, inputs: Mapping[str, bytes], authorization: str | None,
                      timeout: float | None) -> dict:
        self.shared.check(authorization)
        predict = super().predict
        return await self.keys.call(lambda bearer: predict(name, inputs, bearer, timeout), _mapped_refusal)


class TorchServePassThrough(inference_pb2_grpc.InferenceAPIsServiceServicer):
    """TorchServe's own gRPC (Ping, Predictions) behind the shared key: the request and the
    answer, TorchServe's status codes included, pass unchanged."""

    def __init__(self, stub: inference_pb2_grpc.InferenceAPIsServiceStub, shared: SharedKey,
                 keys: TorchServeKeys) -> None:
        self.stub, self.shared, self.keys = stub, shared, keys

    async def _forward(self, method: Callable, request, context: grpc.aio.ServicerContext):
        timeout = upstream_timeout(context)
        try:
            self.shared.check(authorization(context))
            return await self.keys.call(
                lambda bearer: method(request, metadata=(("authorization", bearer),), timeout=timeout), _grpc_refusal)
        except GatewayError as error:
            await error.abort(context)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), error.details() or "")

    async def Ping(self, request, context):
        return await self._forward(self.stub.Ping, request, context)

    async def Predictions(self, request, context):
        return await self._forward(self.stub.Predictions, request, context)


def upstream_headers(caller: Mapping[str, str], bearer: str) -> dict[str, str]:
    """What TorchServe gets: the body's type and length, and TorchServe's key instead of the caller's."""
    kept = {name: caller[name] for name in REQUEST_HEADERS if name in caller}
    return {**kept, "Authorization": bearer}


def response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    return {name: upstream[name] for name in RESPONSE_HEADERS if name in upstream}


def error_response(error: GatewayError) -> web.Response:
    """ConvScope's error document, as TorchServe's REST answers it."""
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else {}
    if error.http_status == 503:
        headers["Retry-After"] = "1"
    return web.json_response({"code": error.http_status, "type": error.type, "message": error.message},
                             status=error.http_status, headers=headers)


def too_large(limit: int) -> GatewayError:
    return GatewayError(grpc.StatusCode.RESOURCE_EXHAUSTED, "PayloadTooLarge",
                        f"the request body is over the {limit}-byte limit", 413)


def is_key_refusal(status: int, body: bytes) -> bool:
    if status != 400:
        return False
    try:
        return json.loads(body).get("type") == REFUSED_TYPE
    except (ValueError, AttributeError):
        return False


class LimitedBody:
    """The caller's body as chunks, stopped past ``limit`` bytes (a length may be absent or lie)."""

    def __init__(self, stream: aiohttp.StreamReader, limit: int) -> None:
        self.stream, self.limit, self.exceeded = stream, limit, False

    async def chunks(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.stream.iter_chunked(CHUNK_BYTES):
            seen += len(chunk)
            if seen > self.limit:
                self.exceeded = True
                raise too_large(self.limit)
            yield chunk


class RestProxy:
    """TorchServe's inference REST on the gateway's HTTP port: bodies streamed both ways."""

    def __init__(self, inference_url: str, shared: SharedKey, keys: TorchServeKeys, max_request_bytes: int) -> None:
        self.url, self.shared, self.keys = inference_url.rstrip("/"), shared, keys
        self.max_request_bytes = max_request_bytes
        self.session: aiohttp.ClientSession | None = None  # opened with the app (Edge.lifespan)

    def routes(self) -> list[web.RouteDef]:
        paths = [f"/{kind}/{{name}}{version}" for kind in ("predictions", "explanations")
                 for version in ("", "/{version}")]
        return [web.post(path, self.forward) for path in paths] + [web.get("/ping", self.forward)]

    async def forward(self, request: web.Request) -> web.StreamResponse:
        body = LimitedBody(request.content, self.max_request_bytes)
        try:
            self.shared.check(request.headers.get("Authorization"))
            if (request.content_length or 0) > self.max_request_bytes:
                raise too_large(self.max_request_bytes)
            return await self._relay(request, body)
        except GatewayError as error:
            return error_response(error)
        except aiohttp.ClientError as error:
            if body.exceeded:
                return error_response(too_large(self.max_request_bytes))
            return error_response(GatewayError(grpc.StatusCode.UNAVAILABLE, "Unavailable",
                                               f"TorchServe cannot take the request now: {error}", 503))

    async def _relay(self, request: web.Request, body: LimitedBody) -> web.StreamResponse:
        if self.session is None:
            raise RuntimeError("the REST proxy runs inside the app's lifespan (Edge.add_to_app)")
        async with self.session.request(request.method, self.url + request.rel_url.raw_path_qs,
                                        data=body.chunks() if request.body_exists else None,
                                        headers=upstream_headers(request.headers, self.keys.bearer())) as answer:
            if answer.status == 400:  # small: read whole, to tell a refused key from a bad request
                content = await answer.read()
                if is_key_refusal(answer.status, content):
                    self.keys.refused()  # the body is spent: the caller retries (503, Retry-After)
                    raise key_refused(self.keys.file.path)
                return web.Response(status=400, body=content, content_type=answer.content_type)
            response = web.StreamResponse(status=answer.status, headers=response_headers(answer.headers))
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_chunked(CHUNK_BYTES):
                    await response.write(chunk)
            except aiohttp.ClientError as error:
                # Part of the answer is sent: break the connection so the caller sees it cut short.
                raise ConnectionResetError(f"TorchServe's answer broke off: {error}") from error
            await response.write_eof()
            return response


class Edge:
    """Edge mode, wired into the gateway: its upstream, the pass-through service, the proxy."""

    def __init__(self, config: GatewayConfig) -> None:
        if config.edge is None:
            raise ValueError("Edge needs config.edge (--edge-key-file)")
        self.shared = SharedKey(config.edge.key_file)
        self.keys = TorchServeKeys(config.key_file, config.management_url)
        self.upstream = EdgeUpstream(config.upstream, config.max_request_bytes, config.max_response_bytes,
                                     self.shared, self.keys)
        self.proxy = RestProxy(config.edge.inference_url, self.shared, self.keys, config.max_request_bytes)
        log.info("edge mode: shared key from %s; TorchServe's REST (%s) and gRPC served behind it",
                 config.edge.key_file, config.edge.inference_url)

    def add_services(self, server: grpc.aio.Server) -> tuple[str, ...]:
        """Serve TorchServe's gRPC on ``server``; returns the service names for reflection."""
        inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(
            TorchServePassThrough(self.upstream.stub, self.shared, self.keys), server)
        return (PASS_THROUGH_SERVICE,)

    def add_to_app(self, app: web.Application) -> None:
        """The REST proxy's routes; the HTTP session and key renewal live as long as the app."""
        app.add_routes(self.proxy.routes())
        app.cleanup_ctx.append(self.lifespan)

    async def lifespan(self, _app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=MAX_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            self.proxy.session = session
            renewer = asyncio.create_task(self.keys.renew_forever(session))
            yield
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
