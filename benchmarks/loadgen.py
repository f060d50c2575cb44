"""The load generator behind benchmarks/load.py, benchmarks/soak.py and tests/integration/test_load.py.

An asyncio client (ConvScope's own ``AsyncClient``, retries off) sends one endpoint's calls over
REST (TorchServe's ``/predictions``) or gRPC (the typed ``convscope.v1`` gateway):

- ``closed_loop``: ``concurrency`` callers, each sending its next call as soon as the last one
  is answered, for ``seconds``: what a fixed pool of clients gets.
- ``open_loop``: calls started at fixed rates whatever the answers (a steady offered load),
  for the soak.

A call is an error when it is not answered with a result (any status but OK, a refused or
dropped connection) or when it is answered later than its endpoint's deadline: a client with
that deadline would have given up on it. The deadlines (``DEADLINES``) are a caller's budget for
an interactive request: 1 s for classification, features and search, 5 s for one-pass
explanations (Grad-CAM, gradient saliency).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from convscope_client import AsyncClient, ConvScopeError

from convscope.endpoints import SUFFIXES

DEADLINES = {"classify": 1.0, "features": 1.0, "neighbours": 1.0, "saliency": 5.0, "cam": 5.0}
ENDPOINTS = tuple(DEADLINES)
PROTOCOLS = ("rest", "grpc")


def caller(endpoint: str, model: str) -> Callable[[AsyncClient, bytes], Awaitable[object]]:
    """One call of ``endpoint`` on ``model`` with the endpoint's everyday settings."""
    calls = {
        "classify": lambda c, image: c.classify(model, image),
        "features": lambda c, image: c.features(model, image),
        "neighbours": lambda c, image: c.neighbours(model, image=image, k=10),
        "saliency": lambda c, image: c.saliency(model, image, method="gradient"),
        "cam": lambda c, image: c.cam(model, image, method="gradcam"),
    }
    return calls[endpoint]


class LeanRest:
    """A load generator's REST caller, as wrk or hey would be: one keep-alive HTTP/1.1
    connection per caller in flight, the request's bytes built once per (model, endpoint,
    image), the image as the raw body (``curl --data-binary``), the answer's status and body
    read and not parsed. It measures the service, not a client library: ConvScope's
    ``AsyncClient`` (httpx, multipart bodies, typed results) costs about 2 ms of CPU a call on
    this machine, as much as TorchServe's frontend and the worker together. Only classify and
    features (the endpoints taking just an image)."""

    def __init__(self, url: str, token: str) -> None:
        host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":")
        self.host, self.port, self.token = host, int(port), token
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._requests: dict[tuple[str, int], bytes] = {}

    def _request(self, path: str, image: bytes) -> bytes:
        key = (path, id(image))
        if key not in self._requests:
            head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Authorization: Bearer {self.token}\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Length: {len(image)}\r\n\r\n")
            self._requests[key] = head.encode() + image
        return self._requests[key]

    async def _post(self, path: str, image: bytes) -> bytes:
        reader, writer = self._idle.pop() if self._idle else await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self._request(path, image))
            status = int((await reader.readline()).split(b" ", 2)[1])
            length, close = None, False
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                length = int(value) if name == b"content-length" else length
                close = close or (name == b"connection" and value.strip().lower() == b"close")
            if length is None:
                raise ConvScopeError(502, "ProtocolError", "answer without Content-Length")
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        if status != 200:
            raise ConvScopeError(status, "HTTP", body[:200].decode(errors="replace"))
        return body

    async def classify(self, model: str, image: bytes) -> bytes:
        return await self._post(f"/predictions/{model}{SUFFIXES['classify']}", image)

    async def features(self, model: str, image: bytes) -> bytes:
        return await self._post(f"/predictions/{model}{SUFFIXES['features']}", image)

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def client_for(server, protocol: str, timeout: float = 60.0) -> AsyncClient:
    """An ``AsyncClient`` of ``server`` (a ``convscope.serving.RunningServer``), retries off."""
    address = (server.url("inference") if protocol == "rest"
               else f"127.0.0.1:{server.ports['gateway_grpc']}")
    return AsyncClient(address, transport=protocol, token=server.keys["inference"],
                       timeout=timeout, retries=0)


@dataclass
class Tally:
    """What one run got: latencies of the calls answered in time, and every error by kind."""

    deadline: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, started: float, error: str | None) -> None:
        took = time.monotonic() - started
        if error is None and took > self.deadline:
            error = "late"
        if error is None:
            self.latencies.append(took)
        else:
            self.errors[error] = self.errors.get(error, 0) + 1

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3 if self.latencies else float("nan")

    def summary(self) -> dict:
        return {"answered": self.answered, "failed": self.failed, "errors": dict(self.errors),
                "seconds": round(self.seconds, 2), "throughput": round(self.throughput, 2),
                "p50_ms": round(self.ms(50), 1), "p95_ms": round(self.ms(95), 1),
                "p99_ms": round(self.ms(99), 1)}


async def _one(client: AsyncClient, call, image: bytes, tally: Tally) -> None:
    started, error = time.monotonic(), None
    try:
        await call(client, image)
    except ConvScopeError as exc:
        error = f"{exc.status} {exc.type}"
    except Exception as exc:  # a dropped connection or a protocol error: counted, never raised
        error = type(exc).__name__
    tally.record(started, error)


async def closed_loop(client: AsyncClient, endpoint: str, model: str, images: list[bytes],
                      concurrency: int, seconds: float, deadline: float | None = None) -> Tally:
    """``concurrency`` callers of ``endpoint`` for ``seconds``; calls still in flight at the end
    are awaited and counted. ``deadline``: seconds (default: the endpoint's, ``DEADLINES``)."""
    call, tally = caller(endpoint, model), Tally(DEADLINES[endpoint] if deadline is None else deadline)
    pick = itertools.cycle(images)
    begin = time.monotonic()
    end = begin + seconds

    async def loop() -> None:
        while time.monotonic() < end:
            await _one(client, call, next(pick), tally)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    tally.seconds = time.monotonic() - begin
    return tally


async def open_loop(clients: dict[str, AsyncClient], plan: dict[tuple[str, str], float], model: str,
                    images: list[bytes], seconds: float, max_in_flight: int = 256) -> dict[tuple[str, str], Tally]:
    """Calls of each ``(endpoint, protocol)`` in ``plan`` started at its rate (per second) for
    ``seconds``, evenly spaced; at most ``max_in_flight`` outstanding in all (beyond that a call
    is counted as ``shed`` by the generator, never queued without bound)."""
    tallies = {key: Tally(DEADLINES[key[0]]) for key in plan}
    pending: set[asyncio.Task] = set()
    begin = time.monotonic()

    async def schedule(key: tuple[str, str], rate: float) -> None:
        endpoint, protocol = key
        call, pick = caller(endpoint, model), itertools.cycle(images)
        for n in itertools.count():
            due = begin + n / rate
            if due >= begin + seconds:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if len(pending) >= max_in_flight:
                tallies[key].errors["shed"] = tallies[key].errors.get("shed", 0) + 1
                continue
            task = asyncio.create_task(_one(clients[protocol], call, next(pick), tallies[key]))
            pending.add(task)
            task.add_done_callback(pending.discard)

    await asyncio.gather(*(schedule(key, rate) for key, rate in plan.items() if rate > 0))
    if pending:
        await asyncio.wait(set(pending))
    for tally in tallies.values():
        tally.seconds = time.monotonic() - begin
    return tallies
