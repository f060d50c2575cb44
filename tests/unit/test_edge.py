"""Edge mode (convscope_gateway/edge.py) in process: the shared-key check, TorchServe's keys
(read, re-read, renewed), the headers TorchServe gets, and the REST proxy and gRPC pass-through
against fake TorchServes that accept only their current key."""

from __future__ import annotations

import ast
import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import empty_pb2

from convscope_gateway import edge
from convscope_gateway._proto import inference_pb2, inference_pb2_grpc
from convscope_gateway.errors import GatewayError

SHARED = "shared-key-0123456789abcdef"


def write_key_files(folder: Path, inference: str = "ts-inference-1", expires: datetime | None = None) -> Path:
    expires = expires or datetime.now(UTC) + timedelta(days=1)
    doc = {"management": {"key": "ts-management", "expiration time": expires.isoformat()},
           "inference": {"key": inference, "expiration time": expires.isoformat()},
           "API": {"key": "ts-api"}}
    path = folder / "key_file.json"
    path.write_text(json.dumps(doc))
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))  # a rewrite within one mtime tick is seen
    return path


@pytest.fixture
def shared(tmp_path) -> edge.SharedKey:
    (tmp_path / "edge.key").write_text(SHARED + "\n")
    return edge.SharedKey(tmp_path / "edge.key")


@pytest.fixture
def keys(tmp_path) -> edge.TorchServeKeys:
    return edge.TorchServeKeys(write_key_files(tmp_path), "http://127.0.0.1:1")


# The shared key -------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [f"Bearer {SHARED}", f"bearer {SHARED}", f"  Bearer   {SHARED}  "])
def test_the_shared_key_passes(shared, header):
    shared.check(header)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {SHARED}", SHARED, f"Bearer {SHARED}x",
                                    f"Bearer {SHARED[:-1]}", "Bearer ts-inference-1", f"Bearer {SHARED} {SHARED}"])
def test_anything_else_is_unauthenticated(shared, header):
    with pytest.raises(GatewayError) as caught:
        shared.check(header)
    assert (caught.value.code, caught.value.http_status) == (grpc.StatusCode.UNAUTHENTICATED, 401)


@pytest.mark.parametrize("content", ["", "\n\n", "short", "two words-0123456789", f"{SHARED}\nshort"])
def test_an_unusable_key_file_stops_the_start(tmp_path, content):
    (tmp_path / "edge.key").write_text(content)
    with pytest.raises(SystemExit, match="no usable shared key"):
        edge.SharedKey(tmp_path / "edge.key")
    with pytest.raises(SystemExit):
        edge.SharedKey(tmp_path / "missing.key")


def test_a_rotated_secret_is_followed(tmp_path):
    """Kubernetes updates a mounted Secret by re-pointing the ``..data`` symlink."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "key").write_text(SHARED)
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "key").symlink_to("..data/key")
    key = edge.SharedKey(tmp_path / "key")
    key.check(f"Bearer {SHARED}")
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "key").write_text("rotated-key-0123456789")
    (tmp_path / "..tmp").symlink_to("v2")
    os.replace(tmp_path / "..tmp", tmp_path / "..data")
    key.check("Bearer rotated-key-0123456789")
    with pytest.raises(GatewayError):
        key.check(f"Bearer {SHARED}")
    (tmp_path / "v2" / "key").write_text("short")  # a bad rotation keeps the last good key
    key.check("Bearer rotated-key-0123456789")


def test_the_comparison_is_constant_time(shared, monkeypatch):
    """Every check goes through hmac.compare_digest on equal-length digests, whatever was sent."""
    seen: list[tuple[int, int]] = []
    real = edge.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(edge.hmac, "compare_digest", spy)
    for header in (f"Bearer {SHARED}", "Bearer x", "Bearer " + "y" * 500, None):
        try:
            shared.check(header)
        except GatewayError:
            pass
    assert seen == [(32, 32)] * 4


def test_two_keys_while_a_rotation_rolls_out(tmp_path):
    (tmp_path / "edge.key").write_text(f"{SHARED}\n\nnext-key-0123456789abcdef\n")
    key = edge.SharedKey(tmp_path / "edge.key")
    key.check(f"Bearer {SHARED}")
    key.check("Bearer next-key-0123456789abcdef")
    with pytest.raises(GatewayError):
        key.check("Bearer other-key-0123456789abcdef")


def test_no_secret_is_compared_with_an_operator():
    """No ``==``, ``!=`` or ``in`` touches a key in edge.py (that would leak timing)."""
    secret_words = ("key", "token", "digest", "secret", "presented", "expected", "bearer")
    tree = ast.parse(Path(edge.__file__).read_text())

    def names(node: ast.AST) -> set[str]:
        return {n.id.lower() for n in ast.walk(node) if isinstance(n, ast.Name)} | {
            n.attr.lower() for n in ast.walk(node) if isinstance(n, ast.Attribute)}

    risky = [ast.get_source_segment(Path(edge.__file__).read_text(), node) for node in ast.walk(tree)
             if isinstance(node, ast.Compare)
             and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops)
             and any(word in name for name in names(node) for word in secret_words)]
    assert risky == []


# TorchServe's keys ----------------------------------------------------------------------------

def test_torchserve_keys_are_read_and_followed(tmp_path, keys):
    assert keys.bearer() == "Bearer ts-inference-1"
    write_key_files(tmp_path, "ts-inference-2")
    assert keys.bearer() == "Bearer ts-inference-2"
    # TorchServe truncates the file before writing it: a torn read keeps the last good key.
    (tmp_path / "key_file.json").write_text('{"management": {')
    assert keys.bearer() == "Bearer ts-inference-2"


def test_no_key_file_yet_is_unavailable(tmp_path):
    keys = edge.TorchServeKeys(tmp_path / "key_file.json", "http://127.0.0.1:1")
    with pytest.raises(GatewayError) as caught:
        keys.bearer()
    assert caught.value.http_status == 503


def test_a_refused_key_is_re_read_once(tmp_path, keys):
    current = {"key": "ts-inference-1"}
    used: list[str] = []

    async def attempt(bearer: str) -> str:
        used.append(bearer)
        if bearer != f"Bearer {current['key']}":
            raise PermissionError
        return "answer"

    def refused(error: BaseException) -> bool:
        return isinstance(error, PermissionError)

    assert asyncio.run(keys.call(attempt, refused)) == "answer"
    # TorchServe changes its key and the file within the same mtime tick: only the refusal tells.
    current["key"] = "ts-inference-2"
    path = tmp_path / "key_file.json"
    stat = path.stat()
    path.write_text(path.read_text().replace("ts-inference-1", "ts-inference-2"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert asyncio.run(keys.call(attempt, refused)) == "answer"
    assert used == ["Bearer ts-inference-1", "Bearer ts-inference-1", "Bearer ts-inference-2"]
    current["key"] = "never-written"
    with pytest.raises(GatewayError) as caught:
        asyncio.run(keys.call(attempt, refused))
    assert caught.value.http_status == 503  # the caller's key was fine: not a 401
    with pytest.raises(ValueError):  # anything but a refusal is not retried
        asyncio.run(keys.call(lambda bearer: _raise(ValueError()), refused))


async def _raise(error: Exception):
    raise error


def test_keys_near_expiry_are_renewed_through_the_token_api(tmp_path):
    now = datetime.now(UTC)
    path = write_key_files(tmp_path, expires=now + timedelta(minutes=5))
    calls: list[tuple[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        calls.append((request.query["type"], request.headers["Authorization"]))
        write_key_files(tmp_path, f"renewed-{len(calls)}", now + timedelta(days=1))
        return web.json_response("")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/token", token)
        async with TestServer(app) as upstream, TestClient(TestServer(web.Application())) as client:
            keys = edge.TorchServeKeys(path, str(upstream.make_url("")))
            assert keys.expiring(now) == ["inference", "management"]
            for kind in keys.expiring(now):
                await keys.renew(client.session, kind)
            assert keys.expiring(now) == []
            assert keys.bearer() == "Bearer renewed-2"

    asyncio.run(scenario())
    assert calls == [("inference", "Bearer ts-api"), ("management", "Bearer ts-api")]


def test_without_edge_mode_only_the_management_key_is_renewed(tmp_path):
    """The gateway's readiness poller needs the management key for as long as the server runs;
    renewing the inference key would break the key every client holds."""
    now = datetime.now(UTC)
    keys = edge.TorchServeKeys(write_key_files(tmp_path, expires=now + timedelta(minutes=5)), "http://127.0.0.1:1")
    assert keys.expiring(now, kinds=("management",)) == ["management"]


# What TorchServe gets ---------------------------------------------------------------------------

def test_upstream_headers_carry_the_body_and_torchserve_s_key_only():
    caller = {"Authorization": f"Bearer {SHARED}", "Content-Type": "multipart/form-data; boundary=x",
              "Content-Length": "12", "Cookie": "a=b", "Host": "evil", "X-Forwarded-For": "10.0.0.1",
              "Transfer-Encoding": "chunked"}
    assert edge.upstream_headers(caller, "Bearer ts-inference-1") == {
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": "12",
        "Authorization": "Bearer ts-inference-1"}
    assert edge.response_headers({"Content-Type": "application/json", "Content-Length": "3",
                                  "Set-Cookie": "x", "Connection": "close"}) == {
        "Content-Type": "application/json", "Content-Length": "3"}


# The REST proxy against a fake TorchServe ---------------------------------------------------------

def fake_torchserve_rest(seen: list[dict], accepted: dict[str, str]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"path": request.path_qs, "method": request.method, "headers": dict(request.headers),
                     "length": len(body)})
        if request.headers.get("Authorization") != f"Bearer {accepted['key']}":
            return web.json_response({"code": 400, "type": "InvalidKeyException", "message": "no"}, status=400)
        if request.match_info.get("name") == "unknown":
            return web.json_response({"code": 404, "type": "ModelNotFoundException", "message": "x"}, status=404)
        return web.Response(body=b"\x89PNG" * 50_000, content_type="image/png")

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/predictions/{name}", handle)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def proxy_scenario(tmp_path, shared, limit: int, body):
    """Run ``body(client, seen, accepted, keys)`` against the proxy in front of a fake TorchServe."""
    seen: list[dict] = []
    accepted = {"key": "ts-inference-1"}
    keys = edge.TorchServeKeys(write_key_files(tmp_path), "http://127.0.0.1:1")

    async def scenario() -> None:
        async with TestServer(fake_torchserve_rest(seen, accepted)) as upstream:
            proxy = edge.RestProxy(str(upstream.make_url("")), shared, keys, limit)
            app = web.Application()
            app.add_routes(proxy.routes())
            async with TestClient(TestServer(app)) as client:
                proxy.session = client.session
                await body(client, seen, accepted, keys)

    asyncio.run(scenario())


def test_the_proxy_streams_with_torchserve_s_key(tmp_path, shared):
    async def body(client, seen, accepted, keys):
        answer = await client.post("/predictions/digits?x=1", data=b"img" * 1000,
                                   headers={"Authorization": f"Bearer {SHARED}", "Content-Type": "image/png"})
        assert answer.status == 200 and answer.content_type == "image/png"
        assert await answer.read() == b"\x89PNG" * 50_000
        assert seen[-1]["path"] == "/predictions/digits?x=1" and seen[-1]["length"] == 3000
        assert seen[-1]["headers"]["Authorization"] == "Bearer ts-inference-1"
        assert seen[-1]["headers"]["Content-Type"] == "image/png"
        answer = await client.post("/predictions/unknown", data=b"x", headers={"Authorization": f"Bearer {SHARED}"})
        assert answer.status == 404 and (await answer.json())["type"] == "ModelNotFoundException"
        answer = await client.get("/ping", headers={"Authorization": f"Bearer {SHARED}"})
        assert answer.status == 200 and seen[-1]["method"] == "GET"

    proxy_scenario(tmp_path, shared, 2**20, body)


def test_the_proxy_refuses_a_wrong_key_before_torchserve(tmp_path, shared):
    async def body(client, seen, accepted, keys):
        for headers in ({}, {"Authorization": "Bearer ts-inference-1"}, {"Authorization": "Bearer nope"}):
            answer = await client.post("/predictions/digits", data=b"x", headers=headers)
            assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
            doc = await answer.json()
            assert set(doc) == {"code", "type", "message"} and doc["code"] == 401
        assert seen == []

    proxy_scenario(tmp_path, shared, 2**20, body)


def test_the_proxy_keeps_the_size_limit(tmp_path, shared):
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    async def body(client, seen, accepted, keys):
        auth = {"Authorization": f"Bearer {SHARED}"}
        answer = await client.post("/predictions/digits", data=b"x" * (2**20 + 1), headers=auth)
        assert answer.status == 413 and (await answer.json())["code"] == 413
        assert seen == []  # a declared length over the limit never reaches TorchServe
        answer = await client.post("/predictions/digits", data=chunks(), headers=auth)  # chunked, no length
        assert answer.status == 413
        answer = await client.post("/predictions/digits", data=b"x" * 2**20, headers=auth)
        assert answer.status == 200

    proxy_scenario(tmp_path, shared, 2**20, body)


def test_a_key_torchserve_refuses_is_a_retryable_503(tmp_path, shared):
    async def body(client, seen, accepted, keys):
        auth = {"Authorization": f"Bearer {SHARED}"}
        accepted["key"] = "ts-inference-2"  # TorchServe's key changed, the file not yet
        answer = await client.post("/predictions/digits", data=b"x", headers=auth)
        assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        write_key_files(tmp_path, "ts-inference-2")
        answer = await client.post("/predictions/digits", data=b"x", headers=auth)
        assert answer.status == 200

    proxy_scenario(tmp_path, shared, 2**20, body)


# gRPC: the typed path's upstream and TorchServe's own service, against a fake TorchServe --------

class FakeTorchServeGrpc(inference_pb2_grpc.InferenceAPIsServiceServicer):
    def __init__(self, accepted: dict[str, str]) -> None:
        self.accepted = accepted

    async def _check(self, context) -> None:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {self.accepted['key']}":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "Token Authorization failed")

    async def Ping(self, request, context):
        await self._check(context)
        return inference_pb2.TorchServeHealthResponse(health='{"status": "Healthy"}')

    async def Predictions(self, request, context):
        await self._check(context)
        if request.model_name == "unknown":
            await context.abort(grpc.StatusCode.INTERNAL, "Model not found")
        return inference_pb2.PredictionResponse(prediction=json.dumps({"model": request.model_name}).encode())


def grpc_scenario(tmp_path, shared, body):
    accepted = {"key": "ts-inference-1"}
    keys = edge.TorchServeKeys(write_key_files(tmp_path), "http://127.0.0.1:1")

    async def scenario() -> None:
        fake = grpc.aio.server()
        inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(FakeTorchServeGrpc(accepted), fake)
        fake_port = fake.add_insecure_port("127.0.0.1:0")
        await fake.start()
        upstream = edge.EdgeUpstream(f"127.0.0.1:{fake_port}", 2**20, 2**20, shared, keys)
        front = grpc.aio.server()
        inference_pb2_grpc.add_InferenceAPIsServiceServicer_to_server(
            edge.TorchServePassThrough(upstream.stub, shared, keys), front)
        front_port = front.add_insecure_port("127.0.0.1:0")
        await front.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{front_port}") as channel:
                await body(upstream, inference_pb2_grpc.InferenceAPIsServiceStub(channel), accepted)
        finally:
            await upstream.close()
            await front.stop(None)
            await fake.stop(None)

    asyncio.run(scenario())


def test_the_typed_path_checks_the_shared_key_and_follows_torchserve_s(tmp_path, shared):
    async def body(upstream, _stub, accepted):
        assert await upstream.predict("digits", {"data": b"x"}, f"Bearer {SHARED}", 5) == {"model": "digits"}
        with pytest.raises(GatewayError) as caught:
            await upstream.predict("digits", {"data": b"x"}, "Bearer ts-inference-1", 5)
        assert caught.value.http_status == 401
        accepted["key"] = "ts-inference-2"
        write_key_files(tmp_path, "ts-inference-2")
        assert await upstream.predict("digits", {"data": b"x"}, f"Bearer {SHARED}", 5) == {"model": "digits"}

    grpc_scenario(tmp_path, shared, body)


def test_torchserve_s_grpc_passes_through_behind_the_shared_key(tmp_path, shared):
    async def body(_upstream, stub, accepted):
        key = (("authorization", f"Bearer {SHARED}"),)
        answer = await stub.Predictions(inference_pb2.PredictionsRequest(model_name="digits"), metadata=key)
        assert json.loads(answer.prediction) == {"model": "digits"}
        assert "Healthy" in (await stub.Ping(empty_pb2.Empty(), metadata=key)).health
        for metadata in ((), (("authorization", "Bearer ts-inference-1"),)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Predictions(inference_pb2.PredictionsRequest(model_name="digits"), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:  # TorchServe's own status passes unchanged
            await stub.Predictions(inference_pb2.PredictionsRequest(model_name="unknown"), metadata=key)
        assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.INTERNAL, "Model not found")
        accepted["key"] = "never-written"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Predictions(inference_pb2.PredictionsRequest(model_name="digits"), metadata=key)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    grpc_scenario(tmp_path, shared, body)


# convscope-serve: where the listeners go, and edge mode passed on ---------------------------------

def test_convscope_serve_binds_the_gateway_and_metrics_only(store, tmp_path):
    from convscope.serving import DEFAULT_PORTS, gateway_command, render_config
    from convscope_gateway.server import parse_args

    config = dict(line.split("=", 1) for line in render_config(store, DEFAULT_PORTS, metrics_host="0.0.0.0")
                  .splitlines() if "=" in line and not line.startswith("#"))
    assert config["metrics_address"] == "http://0.0.0.0:8082"
    assert config["inference_address"] == "http://127.0.0.1:8080"
    assert config["management_address"] == "http://127.0.0.1:8081"
    assert config["grpc_inference_address"] == config["grpc_management_address"] == "127.0.0.1"
    assert config["disable_token_authorization"] == "false"

    command = gateway_command(tmp_path, store, DEFAULT_PORTS, "0.0.0.0", tmp_path / "edge.key")
    gateway = parse_args(command[command.index("convscope_gateway") + 1:])
    assert (gateway.listen, gateway.http_listen) == ("0.0.0.0:50051", "0.0.0.0:8090")
    assert (gateway.upstream, gateway.management_url) == ("127.0.0.1:7070", "http://127.0.0.1:8081")
    assert gateway.edge == edge.EdgeConfig(tmp_path / "edge.key", "http://127.0.0.1:8080")
    plain = parse_args(gateway_command(tmp_path, store, DEFAULT_PORTS)[3:])
    assert (plain.listen, plain.edge) == ("127.0.0.1:50051", None)
    assert gateway_command(tmp_path, store, DEFAULT_PORTS, "::")[4] == "[::]:50051"
