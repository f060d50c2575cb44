"""Edge mode against the real TorchServe: a gateway started with ``--edge-key-file`` in front of
the session's server, as ``convscope-serve --edge-key-file`` starts it. All three faces (the
REST proxy, the typed gRPC and OIP, TorchServe's own gRPC) answer the shared key and nothing
else; TorchServe's refusals and its token API are met as edge.py expects them."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
import requests
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from convscope.serving import free_ports, gateway_command
from convscope_gateway._proto import inference_pb2, inference_pb2_grpc
from convscope_gateway.edge import PASS_THROUGH_SERVICE, TorchServeKeys
from convscope_gateway.tensors import encode_bytes
from tests.imaging import held_out_digits

pytestmark = pytest.mark.integration
LIMITS = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_send_message_length", 64 * 2**20)]


@dataclass
class EdgeGateway:
    process: subprocess.Popen
    key: str
    key_file: Path
    """The copy of TorchServe's key file this gateway reads (the tests make it go stale)."""
    grpc_port: int
    http_port: int
    channel: grpc.Channel

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def metadata(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.key}"),)


def _serving(channel: grpc.Channel) -> bool:
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.RpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def edge(server, store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge")
    key = secrets.token_urlsafe(32)
    (folder / "edge.key").write_text(key + "\n")
    # TorchServe's key file, as the gateway sees it: a copy, so a test can make it go stale.
    run_dir = folder / "run"
    run_dir.mkdir()
    shutil.copy(server.run_dir / "key_file.json", run_dir / "key_file.json")
    fresh = free_ports()
    ports = {**server.running.ports, "gateway_grpc": fresh["gateway_grpc"], "gateway_http": fresh["gateway_http"]}
    command = gateway_command(run_dir, store, ports, edge_key_file=folder / "edge.key")
    log = open(folder / "gateway.out", "wb")
    process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{ports['gateway_grpc']}", options=LIMITS)
    try:
        deadline = time.monotonic() + 60
        while not _serving(channel):  # health needs no key: kubelet's gRPC probe sends none
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the edge gateway did not come up:\n{(folder / 'gateway.out').read_text()}")
            time.sleep(0.3)
        yield EdgeGateway(process, key, run_dir / "key_file.json", ports["gateway_grpc"], ports["gateway_http"],
                          channel)
    finally:
        channel.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _digit() -> bytes:
    return held_out_digits(1)[4][1]


def _digit_label() -> int:
    return held_out_digits(1)[4][0]


def _classify(edge: EdgeGateway, key: str | None = None) -> pb.ClassifyResponse:
    stub = pb_grpc.ConvScopeStub(edge.channel)
    return stub.Classify(pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit()), top_k=3),
                         metadata=edge.metadata(key), timeout=120)


def _ts_predict(edge: EdgeGateway, key: str | None = None) -> inference_pb2.PredictionResponse:
    stub = inference_pb2_grpc.InferenceAPIsServiceStub(edge.channel)
    request = inference_pb2.PredictionsRequest(model_name="digits", input={"data": _digit(), "top_k": b"3"})
    return stub.Predictions(request, metadata=edge.metadata(key), timeout=120)


def _rest(edge: EdgeGateway, headers: dict[str, str], **kwargs) -> requests.Response:
    return requests.post(f"{edge.url}/predictions/digits", headers=headers, timeout=120, **kwargs)


def test_rest_through_the_proxy_answers_as_torchserve_does(server, edge):
    direct = server.predict("digits", headers={"Content-Type": "image/png"}, data=_digit())
    proxied = _rest(edge, {**edge.auth(), "Content-Type": "image/png"}, data=_digit())
    assert proxied.status_code == 200 and proxied.headers["Content-Type"] == direct.headers["Content-Type"]
    assert proxied.json() == direct.json()
    # a multipart form: its boundary (Content-Type) reaches TorchServe, so do its fields
    form = _rest(edge, edge.auth(), files={"data": ("digit.png", _digit())}, data={"top_k": "2"})
    assert form.status_code == 200 and len(form.json()["predictions"]) == 2
    ping = requests.get(f"{edge.url}/ping", headers=edge.auth(), timeout=30)
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy"


@pytest.mark.parametrize("who", ["none", "torchserve's own key", "a wrong key"])
def test_rest_without_the_shared_key_is_401(server, edge, who):
    headers = {"none": {}, "torchserve's own key": server.auth(), "a wrong key": edge.auth("x" * 43)}[who]
    for answer in (_rest(edge, {**headers, "Content-Type": "image/png"}, data=_digit()),
                   requests.get(f"{edge.url}/ping", headers=headers, timeout=30)):
        assert answer.status_code == 401, answer.text
        doc = answer.json()
        assert set(doc) == {"code", "type", "message"} and doc["code"] == 401


def test_rest_size_limit_is_413(edge):
    answer = _rest(edge, {**edge.auth(), "Content-Type": "image/png"}, data=b"x" * (10 * 2**20 + 1))
    assert answer.status_code == 413 and answer.json()["code"] == 413


def test_typed_grpc_and_oip_need_the_shared_key(server, edge):
    answer = _classify(edge)
    assert answer.predictions[0].class_index == _digit_label()
    for key in ("x" * 43, server.running.keys["inference"]):
        with pytest.raises(grpc.RpcError) as caught:
            _classify(edge, key)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    raw = encode_bytes([_digit()])
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1],
                                     "parameters": {"binary_data_size": len(raw)}}]})
    for key, status in ((edge.key, 200), (server.running.keys["inference"], 401)):
        oip = requests.post(f"{edge.url}/v2/models/digits/infer", data=header.encode() + raw, timeout=120,
                            headers={**edge.auth(key), "Inference-Header-Content-Length": str(len(header))})
        assert oip.status_code == status, oip.text


def test_torchserve_grpc_passes_through_behind_the_shared_key(server, edge):
    with grpc.insecure_channel(f"127.0.0.1:{server.running.ports['grpc_inference']}") as channel:
        direct = inference_pb2_grpc.InferenceAPIsServiceStub(channel).Predictions(
            inference_pb2.PredictionsRequest(model_name="digits", input={"data": _digit(), "top_k": b"3"}),
            metadata=(("authorization", f"Bearer {server.running.keys['inference']}"),), timeout=120)
    assert _ts_predict(edge).prediction == direct.prediction
    ping = inference_pb2_grpc.InferenceAPIsServiceStub(edge.channel).Ping(
        empty_pb2.Empty(), metadata=edge.metadata(), timeout=30)
    assert "Healthy" in ping.health
    for key in ("x" * 43, server.running.keys["inference"]):
        with pytest.raises(grpc.RpcError) as caught:
            _ts_predict(edge, key)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = next(reflection_pb2_grpc.ServerReflectionStub(edge.channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30))
    assert PASS_THROUGH_SERVICE in {s.name for s in listed.list_services_response.service}


def test_a_key_torchserve_refuses_is_unavailable_until_the_file_is_right(edge):
    """TorchServe's real refusals (REST 400 InvalidKeyException, gRPC PERMISSION_DENIED) are
    told from a caller's mistake: 503 / UNAVAILABLE, retryable; the right file heals it."""
    good = edge.key_file.read_text()
    doc = json.loads(good)
    doc["inference"]["key"] = "stale-key"
    edge.key_file.write_text(json.dumps(doc))
    try:
        answer = _rest(edge, {**edge.auth(), "Content-Type": "image/png"}, data=_digit())
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1", answer.text
        for call in (_classify, _ts_predict):
            with pytest.raises(grpc.RpcError) as caught:
                call(edge)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        edge.key_file.write_text(good)
    assert _rest(edge, {**edge.auth(), "Content-Type": "image/png"}, data=_digit()).status_code == 200
    assert _classify(edge).predictions


def test_renewal_through_torchserve_s_token_api(server, edge):
    """What the gateway does before TorchServe's keys expire, against the real token API. The
    session's other tests read the new inference key from ``server.running.keys`` afterwards."""
    keys = TorchServeKeys(server.run_dir / "key_file.json", server.management_url)
    old = server.running.keys["inference"]

    async def renew() -> None:
        async with aiohttp.ClientSession() as session:
            await keys.renew(session, "inference")

    asyncio.run(renew())
    new = json.loads((server.run_dir / "key_file.json").read_text())["inference"]["key"]
    server.running.keys["inference"] = new
    assert new != old and keys.bearer() == f"Bearer {new}"
    assert server.predict("digits", headers={"Content-Type": "image/png", "Authorization": f"Bearer {old}"},
                          data=_digit()).status_code == 400  # the old key is gone
    shutil.copy(server.run_dir / "key_file.json", edge.key_file)  # what the gateway would read
    assert _rest(edge, {**edge.auth(), "Content-Type": "image/png"}, data=_digit()).status_code == 200
    assert _classify(edge).predictions
