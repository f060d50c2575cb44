"""Security (issue 8, item 5), proved against real parts: the session server's listeners are on
loopback only; every inference and management call without the right key is refused on every
face (REST, TorchServe gRPC, the typed gateway, OIP); with registration turned on by an
operator, ``allowed_urls`` keeps a loopback canary at 0 requests; a code-running pickle offered as
weights never runs; a tampered archive fails its worker's start with a clear error.

The four gaps these tests first found are closed: archived spec paths are confined to the
model's folder, junk weights are a SpecError, timm hub and path names are refused (and workers
run with HF_HUB_OFFLINE=1), and the archive records the weights' SHA-256, checked before loading.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import pathlib
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import grpc
import pytest
import requests
import torch
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc
from ts.context import Context

from convscope.build.archive import archive
from convscope.errors import SpecError
from convscope.models import load_model
from convscope.serving import BASE_CONFIG, RunningServer, free_ports, prepare_run_dir, render_config
from convscope.spec import load_spec
from convscope_gateway._proto import inference_pb2, inference_pb2_grpc
from convscope_gateway._proto import open_inference_grpc_pb2 as oip
from convscope_gateway._proto import open_inference_grpc_pb2_grpc as oip_grpc
from tests.imaging import rendered_digits

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
JPEG = {"Content-Type": "image/jpeg"}
REFUSED = "Token Authorization failed"


def _digit() -> bytes:
    return rendered_digits(1)[0][1]


# --- 1. listeners ---------------------------------------------------------------------------

def _descendants(*roots: int) -> set[int]:
    """``roots`` and every process below them (from /proc/<pid>/stat's parent field)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return found


def _address(hex_address: str) -> ipaddress._BaseAddress:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    address = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return address.ipv4_mapped or address


def listening_sockets(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state owned by ``pids``."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:  # the process ended meanwhile
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                host, port = local.split(":")
                found.append((inodes[inode], str(_address(host)), int(port, 16)))
    return found


def test_the_listener_scan_sees_a_wildcard_bind():
    """The scan below must be able to fail: a socket on 0.0.0.0 in this process is reported."""
    import socket

    with socket.socket() as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen()
        port = wildcard.getsockname()[1]
        assert (os.getpid(), "0.0.0.0", port) in listening_sockets({os.getpid()})


def test_every_listener_is_on_loopback(server):
    running = server.running
    pids = _descendants(running.process.pid, running.gateway.pid) | {os.getpid()}
    sockets = listening_sockets(pids)
    exposed = [s for s in sockets if ipaddress.ip_address(s[1]) not in LOOPBACK]
    assert exposed == [], f"listeners off loopback (pid, address, port): {exposed}"
    ports = {port for _pid, _address, port in sockets}
    missing = {name: port for name, port in running.ports.items() if port not in ports}
    assert missing == {}, f"listeners not found by the scan: {missing}"
    # the Java frontend and the gateway are among the owners (the scan did look at them)
    owners = {pid for pid, _a, port in sockets if port in running.ports.values()}
    assert running.gateway.pid in owners and len(owners) >= 3, owners


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_the_rendered_config_keeps_the_hardening(server):
    config = _properties(server.run_dir / "config.properties")
    for key in ("inference_address", "management_address", "metrics_address"):
        assert config[key].startswith("http://127.0.0.1:"), (key, config[key])
    assert config["grpc_inference_address"] == config["grpc_management_address"] == "127.0.0.1"
    assert config["disable_token_authorization"] == "false"
    assert config["enable_model_api"] == "false"
    assert config["enable_envvars_config"] == config["install_py_dep_per_model"] == "false"
    assert config["allowed_urls"] == _properties(BASE_CONFIG)["allowed_urls"]


# --- 2. tokens ------------------------------------------------------------------------------

def _bad_keys(server, good: str) -> dict[str, dict[str, str]]:
    """Headers that must be refused where ``good`` is the right kind of key."""
    keys = server.running.keys
    bad = {"none": {}, "wrong": {"Authorization": "Bearer not-a-key"},
           "not-bearer": {"Authorization": keys[good]}}
    bad.update({f"{kind}-key": {"Authorization": f"Bearer {keys[kind]}"} for kind in keys if kind != good})
    return bad


def test_inference_needs_the_inference_key(server):
    failures = []
    for name in server.running.names:
        for path in (f"/predictions/{name}", f"/explanations/{name}"):
            for label, headers in _bad_keys(server, "inference").items():
                answer = requests.post(server.url + path, data=_digit(), headers={**JPEG, **headers}, timeout=30)
                if answer.status_code != 400 or REFUSED not in answer.text:
                    failures.append((path, label, answer.status_code, answer.text[:100]))
    assert failures == []
    # the right key is accepted (the refusals above are about the key, nothing else)
    assert server.predict("digits", data=_digit(), headers=JPEG).status_code == 200


def test_ping_needs_the_inference_key(server):
    """TorchServe 0.12 checks the token on /ping too (the k8s probes use the gateway's health)."""
    for label, headers in _bad_keys(server, "inference").items():
        answer = requests.get(server.url + "/ping", headers=headers, timeout=10)
        assert answer.status_code == 400 and REFUSED in answer.text, (label, answer.text)
    answer = requests.get(server.url + "/ping", headers=server.auth(), timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "Healthy", answer.text


MANAGEMENT_CALLS = [("get", "/models"), ("get", "/models/digits"), ("get", "/models/digits-features"),
                    # digits-features already runs 2 workers: should this ever be accepted, nothing changes
                    ("put", "/models/digits-features?min_worker=2&max_worker=2")]


def test_management_needs_the_management_key(server):
    failures = []
    for method, path in MANAGEMENT_CALLS:
        for label, headers in _bad_keys(server, "management").items():
            answer = requests.request(method, server.management_url + path, headers=headers, timeout=30)
            if answer.status_code != 400 or REFUSED not in answer.text:
                failures.append((method, path, label, answer.status_code, answer.text[:100]))
    assert failures == []
    answer = requests.get(server.management_url + "/models", headers=server.auth("management"), timeout=30)
    assert answer.status_code == 200 and answer.json()["models"]


def test_key_rotation_needs_the_api_key(server):
    """``/token`` renews keys: only the API key may call it (a wrong key must not rotate the
    inference key under every client)."""
    failures = []
    for label, headers in _bad_keys(server, "API").items():
        answer = requests.post(server.management_url + "/token?type=inference", headers=headers, timeout=30)
        if answer.status_code != 400:
            failures.append((label, answer.status_code, answer.text[:100]))
    assert failures == []
    assert server.predict("digits", data=_digit(), headers=JPEG).status_code == 200  # key unchanged


def _metadata(headers: dict[str, str]) -> tuple:
    return tuple((k.lower(), v) for k, v in headers.items())


def test_torchserve_grpc_predictions_need_the_inference_key(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.running.ports['grpc_inference']}") as channel:
        stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel)
        request = inference_pb2.PredictionsRequest(model_name="digits", input={"data": _digit()})
        for label, headers in _bad_keys(server, "inference").items():
            with pytest.raises(grpc.RpcError) as refused:
                stub.Predictions(request, metadata=_metadata(headers), timeout=30)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (label, refused.value.details())
        good = stub.Predictions(request, metadata=_metadata(server.auth()), timeout=60)
        assert json.loads(good.prediction)["predictions"]


def _field(number: int, value) -> bytes:
    """One protobuf field (strings and varints): enough for the management requests below."""
    if isinstance(value, str):
        data = value.encode()
        return bytes([number << 3 | 2, len(data)]) + data
    return bytes([number << 3, value])


MANAGEMENT_GRPC = [("ListModels", _field(1, 100)), ("DescribeModel", _field(1, "digits")),
                   ("ScaleWorker", _field(1, "digits-features") + _field(3, 2) + _field(4, 2)),
                   ("RegisterModel", _field(5, "evil") + _field(9, "digits.mar"))]


def test_torchserve_grpc_management_needs_the_management_key(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.running.ports['grpc_management']}") as channel:
        def call(method: str, body: bytes, headers: dict) -> bytes:
            rpc = channel.unary_unary(f"/org.pytorch.serve.grpc.management.ManagementAPIsService/{method}")
            return rpc(body, metadata=_metadata(headers), timeout=30)

        for method, body in MANAGEMENT_GRPC:
            for label, headers in _bad_keys(server, "management").items():
                with pytest.raises(grpc.RpcError) as refused:
                    call(method, body, headers)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, label)
        assert b"digits" in call("ListModels", _field(1, 100), server.auth("management"))
        with pytest.raises(grpc.RpcError) as off:  # registration is off even with the right key
            call("RegisterModel", MANAGEMENT_GRPC[-1][1], server.auth("management"))
        assert off.value.code() != grpc.StatusCode.OK


def test_the_typed_gateway_needs_the_inference_key(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.running.ports['gateway_grpc']}") as channel:
        typed = pb_grpc.ConvScopeStub(channel)
        infer = oip_grpc.GRPCInferenceServiceStub(channel)
        classify = pb.ClassifyRequest(model="digits", image=pb.Image(data=_digit()))
        oip_request = oip.ModelInferRequest(model_name="digits")
        oip_request.inputs.add(name="image", datatype="BYTES", shape=[1]).contents.bytes_contents.append(_digit())
        for label, headers in _bad_keys(server, "inference").items():
            for name, call in (("Classify", lambda m: typed.Classify(classify, metadata=m, timeout=30)),
                               ("ModelInfer", lambda m: infer.ModelInfer(oip_request, metadata=m, timeout=30))):
                with pytest.raises(grpc.RpcError) as refused:
                    call(_metadata(headers))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (name, label, refused.value.details())
        assert typed.Classify(classify, metadata=_metadata(server.auth()), timeout=60).predictions


def test_oip_rest_needs_the_inference_key(server):
    image = _digit()
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1],
                                     "parameters": {"binary_data_size": len(image) + 4}}]}).encode()
    body = header + struct.pack("<I", len(image)) + image
    url = f"http://127.0.0.1:{server.running.ports['gateway_http']}/v2/models/digits/infer"

    def post(headers: dict) -> requests.Response:
        return requests.post(url, data=body, timeout=60,
                             headers={**headers, "Inference-Header-Content-Length": str(len(header))})

    for label, headers in _bad_keys(server, "inference").items():
        answer = post(headers)
        assert answer.status_code == 401, (label, answer.status_code, answer.text[:200])
    assert post(server.auth()).status_code == 200


# --- 3. registration turned on: allowed_urls ------------------------------------------------

class Canary:
    """A loopback HTTP server that records every request it gets (and serves nothing)."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"PK\x05\x06" + b"\0" * 18)  # an empty zip, should anyone fetch it

            do_GET = do_HEAD = do_POST = _record

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _rewrite(mar: Path, out: Path, changes: dict[str, bytes]) -> Path:
    """A copy of archive ``mar`` with the members in ``changes`` replaced (or added)."""
    with zipfile.ZipFile(mar) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, changes.get(item.filename, source.read(item.filename)))
        for name in set(changes) - set(source.namelist()):
            target.writestr(name, changes[name])
    return out


def _classify_only(store: Path, out: Path) -> Path:
    """digits.mar served under one name (classify only): the lightest real server."""
    spec = json.loads(zipfile.ZipFile(store / "digits.mar").read("spec.json"))
    spec["endpoints"] = ["classify"]
    return _rewrite(store / "digits.mar", out, {"spec.json": json.dumps(spec).encode()})


@pytest.fixture(scope="module")
def registering_server(store, tmp_path_factory):
    """A second TorchServe whose operator turned registration on (``enable_model_api=true``),
    keeping ConvScope's ``allowed_urls``; its store holds only digits.mar."""
    root = tmp_path_factory.mktemp("registering")
    own_store = root / "store"
    own_store.mkdir()
    _classify_only(store, own_store / "digits.mar")
    base = root / "config.properties"
    base.write_text(BASE_CONFIG.read_text().replace("enable_model_api=false", "enable_model_api=true"))
    run_dir, ports = root / "run", free_ports()
    command, env = prepare_run_dir(run_dir, own_store, ports)
    (run_dir / "config.properties").write_text(render_config(own_store, ports, base=base))
    assert "enable_model_api=true" in (run_dir / "config.properties").read_text()
    with open(run_dir / "torchserve.out", "wb") as out:
        process = subprocess.Popen(command, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    running = RunningServer(process, run_dir, ports, ["digits"])
    try:
        yield running.wait_ready()
    finally:
        running.stop()


@pytest.fixture
def canary():
    canary = Canary()
    yield canary
    canary.close()


def _register(running: RunningServer, url: str, name: str = "evil") -> requests.Response:
    params = {"url": url, "model_name": name, "initial_workers": 0}
    return requests.post(f"{running.url('management')}/models", params=params,
                         headers={"Authorization": f"Bearer {running.keys['management']}"}, timeout=60)


def test_the_canary_counts(canary):
    requests.get(canary.url + "/probe", timeout=5)
    assert canary.hits == ["GET /probe"]


def test_registration_fetches_nothing_outside_the_store(registering_server, canary):
    attempts = {
        "canary http": f"{canary.url}/evil.mar",
        "canary https": canary.url.replace("http:", "https:") + "/evil.mar",
        "file outside": "file:///etc/passwd",
        "file store escape": f"file://{registering_server.run_dir}/../../../../etc/passwd",
        "relative escape": "../../../../etc/passwd",
        "relative escape mar": "../store/digits.mar",
        "absolute path": "/etc/passwd",
    }
    answers = {label: _register(registering_server, url) for label, url in attempts.items()}
    wrong = {label: (a.status_code, a.text[:160]) for label, a in answers.items() if not 400 <= a.status_code < 500}
    assert wrong == {}, wrong
    # refused by allowed_urls / the relative-path check, not because the model API is off
    assert all(a.status_code != 405 for a in answers.values())
    assert "does not match any allowed URL" in answers["canary http"].text
    assert "Relative path is not allowed" in answers["relative escape"].text
    assert canary.hits == [], f"TorchServe fetched from the canary: {canary.hits}"


def test_registration_from_the_store_works_when_turned_on(registering_server):
    """The control: the model API is really on (an archive from the store registers)."""
    answer = _register(registering_server, "digits.mar", "digits-again")
    assert answer.status_code == 200, answer.text


# --- 4. code-running pickles offered as weights ---------------------------------------------

class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Touch:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _evil_weights(folder: Path, kind: str) -> tuple[Path, Path]:
    marker = folder / f"ran-{kind}"
    path = folder / f"evil-{kind}.pt"
    payload = {"system": _System, "touch": _Touch}[kind.split("-")[0]](marker)
    if kind.endswith("zip"):  # torch.save's zip format, as a real checkpoint is
        torch.save({"fc.weight": payload}, path)
    else:
        path.write_bytes(pickle.dumps({"fc.weight": payload}))
    return path, marker


EVIL = ["system", "touch", "system-zip", "touch-zip"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", EVIL)
def test_a_code_running_pickle_is_refused_by_spec_and_model_loading(store, tmp_path, kind):
    weights, marker = _evil_weights(tmp_path, kind)
    with pytest.raises(SpecError, match="refused: not a weights-only state dict"):
        load_model(load_spec(store / "digits.toml", weights=weights))
    assert not marker.exists(), "the pickle's payload ran"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["system", "touch-zip"])
def test_a_code_running_pickle_is_refused_by_the_archiver(store, tmp_path, kind):
    weights, marker = _evil_weights(tmp_path, kind)
    with pytest.raises(SpecError, match="refused"):
        archive(store / "digits.toml", tmp_path / "out", weights=weights)
    assert not marker.exists() and not (tmp_path / "out" / "digits.mar").exists()


def test_a_code_running_pickle_is_refused_by_convscope_archive(store, tmp_path):
    weights, marker = _evil_weights(tmp_path, "system-zip")
    done = subprocess.run([str(Path(sys.executable).with_name("convscope-archive")), "--spec",
                           str(store / "digits.toml"), "--weights", str(weights), "--export-path",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "refused: not a weights-only state dict" in done.stderr, done.stderr[-2000:]
    assert not marker.exists() and not (tmp_path / "out" / "digits.mar").exists()


# --- 5. tampered archives -------------------------------------------------------------------

def _unpacked(store: Path, folder: Path, changes: dict[str, bytes] | None = None) -> Path:
    """digits.mar (optionally rewritten with ``changes``) unpacked as TorchServe unpacks it."""
    mar = _rewrite(store / "digits.mar", folder / "digits.mar", changes or {})
    model_dir = folder / "model"
    with zipfile.ZipFile(mar) as zipped:
        zipped.extractall(model_dir)
    return model_dir


def _initialize(model_dir: Path):
    """The worker's start, as TorchServe runs it: the archived handler's ``initialize`` with a
    real ``ts.context.Context`` for the ``digits`` (classify) registration."""
    sys.path.insert(0, str(model_dir))
    try:
        import importlib

        handler = importlib.import_module("convscope_handler").ConvScopeHandler()
        context = Context("digits", str(model_dir), {}, 1, None, "0.12.0",
                          model_yaml_config={"convscope": {}})
        handler.initialize(context)
        return handler
    finally:
        sys.path.remove(str(model_dir))
        sys.modules.pop("convscope_handler", None)


def _spec_with(store: Path, **changes) -> dict[str, bytes]:
    doc = json.loads(zipfile.ZipFile(store / "digits.mar").read("spec.json"))
    doc.update(changes)
    return {"spec.json": json.dumps(doc).encode()}


def _weights(store: Path) -> bytes:
    return zipfile.ZipFile(store / "digits.mar").read("weights.safetensors")


def test_the_untampered_archive_starts(store, tmp_path):
    """The control for the tampering tests: the same path starts the archive as built."""
    handler = _initialize(_unpacked(store, tmp_path))
    assert handler.endpoint is not None


def test_a_corrupt_weights_header_fails_the_start(store, tmp_path):
    weights = bytearray(_weights(store))
    weights[9:13] = b"\xff\xfe\xfd\xfc"  # inside the JSON header
    with pytest.raises(SpecError, match="SHA-256"):  # the recorded digest catches it first
        _initialize(_unpacked(store, tmp_path, {"weights.safetensors": bytes(weights)}))


def test_truncated_weights_fail_the_start(store, tmp_path):
    weights = _weights(store)
    with pytest.raises(SpecError, match="SHA-256"):  # the recorded digest catches it first
        _initialize(_unpacked(store, tmp_path, {"weights.safetensors": weights[:len(weights) // 2]}))


def test_a_pickle_swapped_in_for_the_weights_fails_the_start(store, tmp_path):
    evil, marker = _evil_weights(tmp_path, "system-zip")
    with pytest.raises(SpecError, match="refused"):
        _initialize(_unpacked(store, tmp_path, {**_spec_with(store, weights="weights.pt"),
                                                "weights.pt": evil.read_bytes()}))
    assert not marker.exists()


@pytest.mark.parametrize("arch", ["os:system", "builtins:eval", "convscope:os", "torchvision:../../x"])
def test_an_arch_that_is_not_allowed_fails_the_start(store, tmp_path, arch):
    with pytest.raises(SpecError, match="architecture"):
        _initialize(_unpacked(store, tmp_path, _spec_with(store, arch=arch)))


def test_flipped_weight_values_fail_the_start(store, tmp_path):
    weights = bytearray(_weights(store))
    header = 8 + struct.unpack("<Q", weights[:8])[0]
    for i in range(header + 1000, header + 1100):
        weights[i] ^= 0xFF
    with pytest.raises(SpecError):
        _initialize(_unpacked(store, tmp_path, {"weights.safetensors": bytes(weights)}))


def _outside(tmp_path: Path, store: Path) -> tuple[Path, Path]:
    """A valid weights file and a valid labels file outside the model dir."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "w.safetensors").write_bytes(_weights(store))
    (outside / "labels.json").write_text(json.dumps([f"stolen-{i}" for i in range(10)]))
    return outside / "w.safetensors", outside / "labels.json"


@pytest.mark.parametrize("key", ["weights", "labels"])
@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_a_spec_path_escaping_the_model_dir_fails_the_start(store, tmp_path, key, how):
    weights, labels = _outside(tmp_path, store)
    target = {"weights": weights, "labels": labels}[key]
    model_dir = tmp_path / "tampered" / "model"
    value = os.path.relpath(target, model_dir) if how == "relative" else str(target)
    assert (value.startswith("..") if how == "relative" else value.startswith("/"))
    (tmp_path / "tampered").mkdir()
    with pytest.raises(SpecError):
        _initialize(_unpacked(store, tmp_path / "tampered", _spec_with(store, **{key: value})))


def test_a_non_weights_file_is_a_spec_error(store, tmp_path):
    with pytest.raises(SpecError):
        _initialize(_unpacked(store, tmp_path, _spec_with(store, weights="../../../../../../etc/passwd")))


HUB_FETCH = textwrap.dedent("""
    import http.server, json, os, sys, threading
    hits = []
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path); self.send_response(404); self.end_headers()
        do_HEAD = do_GET
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    from convscope.models import build_architecture
    try:
        build_architecture(sys.argv[1], 10, 3)
        error = None
    except Exception as exc:
        error = type(exc).__name__
    print(json.dumps({"hits": [h for h in hits if "evil" in h], "error": error}))
""")


def test_an_arch_naming_a_hub_repo_fetches_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", HUB_FETCH, "timm:hf-hub:evil/model"], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["hits"] == [] and result["error"] == "SpecError", result
