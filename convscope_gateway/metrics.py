"""The gateway's Prometheus metrics, served at ``/metrics`` on its HTTP port (8090).

One process, so one plain registry (no multiprocess files). Every RPC and REST call is counted
by service, method and final status (a gRPC status name, or the HTTP status), and timed; the
readiness of every TorchServe registration, as the gateway polls it, is a 0/1 gauge, so
"no healthy workers" is one PromQL comparison. Labels are bounded: services and methods come
from the protos and the route table, models from the model store.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
           30.0, 60.0, 120.0)
"""Seconds: the gateway's own cost is sub-millisecond; the calls it waits for reach minutes."""

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "convscope_gateway_requests_total",
    "Calls answered by the gateway, by service (convscope.v1.ConvScope, inference.GRPCInferenceService, "
    "rest), method and final status (gRPC status name or HTTP status).",
    ["service", "method", "code"], registry=REGISTRY)

DURATION = Histogram(
    "convscope_gateway_request_duration_seconds",
    "Time from receiving a call to its answer, TorchServe's time included.",
    ["service", "method"], buckets=BUCKETS, registry=REGISTRY)

READY = Gauge(
    "convscope_registration_ready",
    "1 when the TorchServe registration of this model's endpoint has a ready worker, else 0.",
    ["model", "endpoint"], registry=REGISTRY)

SKIPPED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
"""Probes and reflection: counted by nobody (a probe every second would drown the rates)."""
SKIPPED_ROUTES = ("/metrics", "/v2/health/live", "/v2/health/ready")
"""The same for REST: scrapes and liveness / readiness probes."""


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


def _record(service: str, method: str, code: str, started: float) -> None:
    REQUESTS.labels(service, method, code).inc()
    DURATION.labels(service, method).observe(time.perf_counter() - started)


def _code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    """The status the caller saw: an abort's code, CANCELLED, UNKNOWN for a bug, else OK."""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    code = context.code()
    if isinstance(code, int):
        code = next((c for c in grpc.StatusCode if c.value[0] == code), None)
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


@contextmanager
def _observed(service: str, method: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
    """Count and time the call made inside, with the status it ended with."""
    started, error = time.perf_counter(), None
    try:
        yield
    except BaseException as caught:
        error = caught
        raise
    finally:
        _record(service, method, _code(context, error), started)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary and stream-stream call of the served APIs."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        service, method = _split(details.method)
        if handler is None or service in SKIPPED_SERVICES:
            return handler
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary(request, context):
                with _observed(service, method, context):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer,
                                                       handler.response_serializer)
        if handler.stream_stream:
            inner_stream = handler.stream_stream

            async def stream(requests, context):
                with _observed(service, method, context):
                    async for answer in inner_stream(requests, context):
                        yield answer

            return grpc.stream_stream_rpc_method_handler(stream, handler.request_deserializer,
                                                         handler.response_serializer)
        return handler


@web.middleware
async def rest_middleware(request: web.Request, handler):
    """Counts and times every REST call by its route (``/v2/models/{model}/infer``), not its path."""
    started = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        if route not in SKIPPED_ROUTES:
            _record("rest", f"{request.method} {route}", str(status), started)


async def serve_metrics(_request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def set_ready(model: str, endpoint: str, ready: bool) -> None:
    READY.labels(model, endpoint).set(1 if ready else 0)
