"""Real local servers for the client's unit tests: an HTTP server speaking the REST contract and
a gRPC server implementing convscope.v1. Each records what it received and answers from a
script (a queue of answers), falling back to the golden answer of the call."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from client_golden import GRPC_ONLY, PAIRS

from convscope_client._proto import convscope_pb2_grpc as rpc

_SUFFIX_CALLS = {"-features": "features", "-saliency": "saliency", "-cam": "cam"}
_OP_CALLS = {"search": "neighbours", "add": "index_add", "delete": "index_delete", "stats": "index_stats"}
_INSPECT_CALLS = {"layers": "inspect_layers", "feature_maps": "feature_maps", "filters": "filters",
                  "top_examples": "top_examples"}


@dataclass
class Answer:
    """A scripted answer: HTTP ``status`` and ``body`` (REST), or a gRPC ``code`` (name) with
    trailing metadata; ``delay`` seconds first. ``body`` None: the call's golden answer."""

    status: int = 200
    body: Any = None
    code: str = "OK"
    trailing: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


@dataclass
class Seen:
    """One request as the server received it."""

    call: str
    fields: dict[str, str]
    image: bytes | None
    headers: dict[str, str]
    json: bool = False


@dataclass
class _Script:
    answers: deque[Answer] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def next(self) -> Answer:
        return self.answers.popleft() if self.answers else Answer()


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields, image = {}, None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        if name == "data":
            image = data
        else:
            fields[name] = data.decode()
    return fields, image


class FakeRest(_Script):
    """``POST /predictions/{name}`` on a free loopback port."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                script._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", 0)))
        kind = request.headers.get("Content-Type", "")
        is_json = kind.startswith("application/json")
        if is_json:
            fields, image = json.loads(body), None
        elif kind.startswith("multipart/"):
            fields, image = _parse_multipart(kind, body)
        else:  # the raw body: the image alone
            fields, image = {}, body
        name = request.path.removeprefix("/predictions/")
        suffix = next((s for s in _SUFFIX_CALLS if name.endswith(s)), "")
        if name.endswith("-neighbours"):
            call = _OP_CALLS[fields.get("op", "search")]
        elif name.endswith("-inspect"):
            call = _INSPECT_CALLS[fields.get("op", "layers")]
        else:
            call = _SUFFIX_CALLS.get(suffix, "classify")
        self.seen.append(Seen(call, fields, image, dict(request.headers), is_json))
        answer = self.next()
        time.sleep(answer.delay)
        body_out = answer.body if answer.body is not None else PAIRS[call][0]
        data = body_out if isinstance(body_out, bytes) else json.dumps(body_out).encode()
        try:
            request.send_response(answer.status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


_RPC_CALLS = {"Classify": "classify", "Features": "features", "Saliency": "saliency", "Cam": "cam",
              "Neighbours": "neighbours", "IndexAdd": "index_add", "IndexDelete": "index_delete",
              "IndexStats": "index_stats", "InspectLayers": "inspect_layers", "FeatureMaps": "feature_maps",
              "Filters": "filters", "TopExamples": "top_examples"}


class FakeGrpc(_Script):
    """The convscope.v1 service on a free loopback port; ``requests`` keeps the messages."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self.requests: list[Any] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        rpc.add_ConvScopeServicer_to_server(_servicer(self), self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.stop(grace=None)

    def answer(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        self.requests.append(request)
        self.seen.append(Seen(_RPC_CALLS.get(method, method), {}, None, dict(context.invocation_metadata())))
        answer = self.next()
        time.sleep(answer.delay)
        if answer.code != "OK":
            context.set_trailing_metadata(answer.trailing)
            context.abort(grpc.StatusCode[answer.code], f"scripted {answer.code}")
        if answer.body is not None:
            return answer.body
        return PAIRS[_RPC_CALLS[method]][1] if method in _RPC_CALLS else GRPC_ONLY[method]


def _servicer(fake: FakeGrpc) -> rpc.ConvScopeServicer:
    """A servicer whose every RPC is ``fake.answer``."""
    methods = {name: (lambda self, request, context, name=name: fake.answer(name, request, context))
               for name in [*_RPC_CALLS, *GRPC_ONLY]}
    return type("Servicer", (rpc.ConvScopeServicer,), methods)()
