"""``convscope-gateway``: serve ``convscope.v1`` and OIP v2 over gRPC (50051), OIP v2 over REST
(8090, with the gateway's Prometheus metrics at ``/metrics``), gRPC health checking and server
reflection, in front of TorchServe's inference gRPC.

Health (``grpc.health.v1.Health``): service ``""`` is SERVING when every model is ready;
``convscope.v1.ConvScope`` and ``inference.GRPCInferenceService`` likewise; each backbone ``<m>``
is SERVING when all of its endpoints have a ready worker, and each TorchServe registration
(``<m>``'s endpoints ``<m>-features``, ``<m>-cam``, ...) on its own. Readiness is polled from
TorchServe's management API every ``--poll-interval`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web
from convscope_client._proto import convscope_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from . import edge as edge_mode
from . import metrics, oip
from .catalog import Catalog, ReadinessPoller
from .keys import TorchServeKeys
from .typed import ConvScopeService
from .upstream import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Upstream, channel_options

log = logging.getLogger("convscope.gateway")

TYPED_SERVICE = "convscope.v1.ConvScope"
OIP_SERVICE = "inference.GRPCInferenceService"
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class GatewayConfig:
    listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8090"
    upstream: str = "127.0.0.1:7070"
    management_url: str = "http://127.0.0.1:8081"
    key_file: Path = REPO / "var" / "key_file.json"
    model_store: Path = REPO / "model_store"
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_response_bytes: int = MAX_RESPONSE_BYTES
    poll_interval_s: float = 1.0
    edge: edge_mode.EdgeConfig | None = None
    """Edge mode (edge.py): callers present a shared key; TorchServe's REST and gRPC served too."""


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Gateway:
    """The running gateway: the gRPC server, the REST site and the readiness poller."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.catalog = Catalog.from_store(config.model_store)
        self.edge = edge_mode.Edge(config) if config.edge else None
        self.upstream = self.edge.upstream if self.edge else Upstream(
            config.upstream, config.max_request_bytes, config.max_response_bytes)
        self.health = health_aio.HealthServicer()
        self.server = grpc.aio.server(options=channel_options(config.max_response_bytes, config.max_request_bytes),
                                      interceptors=[metrics.MetricsInterceptor()])
        self.runner: web.AppRunner | None = None
        self.poller_task: asyncio.Task | None = None
        self.renew_task: asyncio.Task | None = None

    async def _set_health(self, catalog: Catalog) -> None:
        def status(ok: bool) -> int:
            return health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING

        everything = catalog.all_ready()
        for service in ("", TYPED_SERVICE, OIP_SERVICE):
            await self.health.set(service, status(everything))
        for model in catalog.cards:
            await self.health.set(model, status(catalog.model_ready(model)))
        for name in catalog.registrations:
            if name not in catalog.cards:  # `<m>` itself is the backbone's status above
                await self.health.set(name, status(catalog.ready.get(name, False)))
        for card in catalog.cards.values():
            for endpoint in card.endpoints:
                metrics.set_ready(card.name, endpoint, catalog.ready.get(card.registration(endpoint), False))

    async def start(self) -> None:
        convscope_pb2_grpc.add_ConvScopeServicer_to_server(ConvScopeService(self.catalog, self.upstream), self.server)
        oip.add_oip_servicer(self.server, self.catalog, self.upstream)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        passed_through = self.edge.add_services(self.server) if self.edge else ()
        reflection.enable_server_reflection(
            (TYPED_SERVICE, OIP_SERVICE, *passed_through,
             health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), self.server)
        await self._set_health(self.catalog)
        if not self.server.add_insecure_port(self.config.listen):
            raise SystemExit(f"convscope-gateway: cannot listen on {self.config.listen}")
        await self.server.start()
        app = web.Application(client_max_size=self.config.max_request_bytes, middlewares=[metrics.rest_middleware])
        app.add_routes(oip.rest_routes(self.catalog, self.upstream))
        app.router.add_get("/metrics", metrics.serve_metrics)
        if self.edge:
            self.edge.add_to_app(app)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, port = _host_port(self.config.http_listen)
        await web.TCPSite(self.runner, host, port).start()
        loop = asyncio.get_running_loop()
        keys = TorchServeKeys(self.config.key_file, self.config.management_url)
        poller = ReadinessPoller(self.catalog, keys, self.config.poll_interval_s,
                                 lambda c: loop.create_task(self._set_health(c)))
        self.poller_task = asyncio.create_task(poller.run())
        if not self.edge:  # edge mode renews both of TorchServe's keys itself
            self.renew_task = asyncio.create_task(self._renew_management_key(keys))

    @staticmethod
    async def _renew_management_key(keys: TorchServeKeys) -> None:
        """TorchServe's management key expires after ``token_expiration_min``; the readiness
        poller needs it for as long as the server runs."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await keys.renew_forever(session, kinds=("management",))

    async def stop(self, grace: float = 5.0) -> None:
        for task in (self.poller_task, self.renew_task):
            if task:
                task.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self.runner:
            await self.runner.cleanup()
        await self.upstream.close()


async def serve(config: GatewayConfig) -> None:
    gateway = Gateway(config)
    await gateway.start()
    print(f"convscope-gateway: gRPC {config.listen} (convscope.v1, OIP v2, health, reflection), "
          f"OIP REST http://{config.http_listen}/v2, upstream TorchServe gRPC {config.upstream}, "
          f"models {', '.join(sorted(gateway.catalog.cards)) or 'none'}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await gateway.stop()


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    d = GatewayConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default=d.listen, help="gRPC address (convscope.v1, OIP, health, reflection)")
    parser.add_argument("--http-listen", default=d.http_listen, help="OIP v2 REST address")
    parser.add_argument("--upstream", default=d.upstream, help="TorchServe's inference gRPC address")
    parser.add_argument("--management-url", default=d.management_url, help="TorchServe's management REST (readiness)")
    parser.add_argument("--key-file", type=Path, default=d.key_file, help="TorchServe's key_file.json (management key)")
    parser.add_argument("--model-store", type=Path, default=d.model_store)
    parser.add_argument("--max-request-mb", type=float, default=d.max_request_bytes / 2**20,
                        help="largest request (gRPC message or REST body): TorchServe's max_request_size")
    parser.add_argument("--max-response-mb", type=float, default=d.max_response_bytes / 2**20)
    parser.add_argument("--poll-interval", type=float, default=d.poll_interval_s)
    edge_mode.add_arguments(parser)
    a = parser.parse_args(argv)
    return GatewayConfig(a.listen, a.http_listen, a.upstream, a.management_url, a.key_file, a.model_store,
                         int(a.max_request_mb * 2**20), int(a.max_response_mb * 2**20), a.poll_interval,
                         edge_mode.config_from(a))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
