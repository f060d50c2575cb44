"""Open Inference Protocol v2 on the gateway, driven by the unmodified ``tritonclient`` over HTTP
(binary tensor extension, JSON) and gRPC against a real TorchServe: classification and features
answers equal to ConvScope's own REST, batches stacked in order, metadata, health, and the
status codes of a bad image, an unknown model and a missing token.

``tritonclient`` pins protobuf below 7, which the project venv cannot have, so it runs from a venv
of its own, made once in a cache folder (``~/.cache/convscope-test/tritonclient-venv``) and reused
while it imports; the test skips only when pip cannot reach a package index to make it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests

from convscope_gateway._proto import open_inference_grpc_pb2 as pb, open_inference_grpc_pb2_grpc as pb_grpc
from convscope_gateway.tensors import decode_raw, encode_bytes
from tests.imaging import photo_bytes

pytestmark = pytest.mark.integration
CLASSIFY, FEATURES = "efficientnet_lite0", "efficientnet_lite0-features"
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "convscope-test" / "tritonclient-venv"
REQUIREMENTS = ["tritonclient[http,grpc]", "numpy"]
NO_INDEX = ("No matching distribution found", "Could not find a version", "NewConnectionError",
            "Network is unreachable", "Temporary failure in name resolution", "ProxyError", "ConnectTimeout")

# Runs in the tritonclient venv: argv[1] is a JSON file {http, grpc, token, images: {name: path}};
# prints one JSON document of results per transport.
CLIENT = r'''
import json, sys, time
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

args = json.load(open(sys.argv[1]))
images = {name: open(path, "rb").read() for name, path in args["images"].items()}
token = "Bearer " + args["token"]


def status(call):
    try:
        call()
    except InferenceServerException as error:
        return {"status": error.status(), "message": error.message()}
    return {"status": "ok"}


def run(module, client, auth, kind):
    def infer(model, names, parameters=None, outputs=None, headers=auth):
        batch = np.array([images[n] for n in names], dtype=np.object_)
        image = module.InferInput("image", list(batch.shape), "BYTES")
        image.set_data_from_numpy(batch)
        return client.infer(model, [image], outputs=outputs, parameters=parameters, headers=headers)

    def listed(array):
        return [[x.decode() if isinstance(x, bytes) else getattr(x, "item", lambda: x)() for x in row] for row in array]

    deadline = time.monotonic() + 60
    while not client.is_server_ready() and time.monotonic() < deadline:
        time.sleep(0.5)
    metadata = client.get_model_metadata(FEATURES, **({"as_json": True} if kind == "grpc" else {}))
    out = {"live": client.is_server_live(), "ready": client.is_server_ready(),
           "model_ready": client.is_model_ready(CLASSIFY), "features_ready": client.is_model_ready(FEATURES),
           "server": client.get_server_metadata(**({"as_json": True} if kind == "grpc" else {})),
           "metadata": metadata}
    answer = infer(CLASSIFY, ["chelsea", "coffee"], {"top_k": 3})
    out["classify"] = {n: listed(answer.as_numpy(n)) for n in ("scores", "classes", "labels")}
    out["classify_dtypes"] = [str(answer.as_numpy(n).dtype) for n in ("scores", "classes")]
    only = infer(CLASSIFY, ["chelsea"], outputs=[module.InferRequestedOutput("labels", **(
        {"binary_data": False} if kind == "http" else {}))])
    response = only.get_response(**({"as_json": True} if kind == "grpc" else {}))
    out["labels_only"] = [o["name"] for o in response["outputs"]]
    out["labels_only_value"] = listed(only.as_numpy("labels"))
    out["features"] = infer(FEATURES, ["chelsea"]).as_numpy("features").tolist()
    out["bad_image"] = status(lambda: infer(CLASSIFY, ["chelsea", "broken"]))
    out["unknown_model"] = status(lambda: client.get_model_metadata("efficientnet_lite0-cam"))
    out["unknown_infer"] = status(lambda: infer("nope", ["chelsea"]))
    out["no_token"] = status(lambda: infer(CLASSIFY, ["chelsea"], headers={}))
    out["bad_top_k"] = status(lambda: infer(CLASSIFY, ["chelsea"], {"top_k": 0}))
    return out


CLASSIFY, FEATURES = args["classify"], args["features"]
results = {
    "http": run(httpclient, httpclient.InferenceServerClient(url=args["http"]), {"Authorization": token}, "http"),
    "grpc": run(grpcclient, grpcclient.InferenceServerClient(url=args["grpc"]), {"authorization": token}, "grpc"),
}
print(json.dumps(results))
'''


def _works(python: Path) -> bool:
    probe = [str(python), "-c", "import tritonclient.http, tritonclient.grpc, numpy"]
    return python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def triton_python() -> Path:
    """A python with ``tritonclient[http,grpc]``: the cached venv, made when it does not import."""
    python = VENV / "bin" / "python"
    if _works(python):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
                         check=False, capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        log = pip.stdout + pip.stderr
        if any(marker in log for marker in NO_INDEX):
            pytest.skip(f"cannot install {REQUIREMENTS} (no package index reachable):\n{log[-1500:]}")
        pytest.fail(f"pip install {REQUIREMENTS} failed:\n{log[-3000:]}")
    assert _works(python), f"{VENV} does not import tritonclient after installing it"
    return python


@pytest.fixture(scope="module")
def triton(server, triton_python, tmp_path_factory) -> dict:
    """What tritonclient saw, per transport (``http``, ``grpc``): one client run for the module."""
    folder = tmp_path_factory.mktemp("tritonclient")
    paths = {"chelsea": photo_bytes("chelsea"), "coffee": photo_bytes("coffee"), "broken": b"\xff\xd8 not a jpeg"}
    for name, data in paths.items():
        (folder / name).write_bytes(data)
    ports = server.running.ports
    (folder / "args.json").write_text(json.dumps({
        "http": f"127.0.0.1:{ports['gateway_http']}", "grpc": f"127.0.0.1:{ports['gateway_grpc']}",
        "token": server.running.keys["inference"], "classify": CLASSIFY, "features": FEATURES,
        "images": {name: str(folder / name) for name in paths}}))
    (folder / "client.py").write_text(CLIENT)
    run = subprocess.run([str(triton_python), str(folder / "client.py"), str(folder / "args.json")],
                         check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{run.stderr[-4000:]}\ngateway:\n{server.running.log_tail(40)}"
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def rest_answers(server) -> dict:
    """ConvScope's own REST answers for the same photos, the oracle."""
    def rest(name: str, photo: str, **params) -> dict:
        answer = server.predict(name, files={"data": ("image", photo_bytes(photo))}, data=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    return {"chelsea": rest(CLASSIFY, "chelsea", top_k="3"), "coffee": rest(CLASSIFY, "coffee", top_k="3"),
            "features": rest(FEATURES, "chelsea")["vector"]}


TRANSPORTS = pytest.mark.parametrize("transport", ["http", "grpc"])


@TRANSPORTS
def test_tritonclient_classifies_a_batch_as_rest_does(triton, rest_answers, transport):
    seen = triton[transport]["classify"]
    assert seen["classes"][0][0] == 285 and seen["labels"][0][0] == "Egyptian cat"
    assert seen["classes"][1][0] == 967  # coffee -> espresso: rows stay in input order
    assert triton[transport]["classify_dtypes"] == ["float32", "int64"]
    for row, photo in enumerate(("chelsea", "coffee")):
        expected = rest_answers[photo]["predictions"]
        assert seen["classes"][row] == [p["class"] for p in expected]
        assert seen["labels"][row] == [p["label"] for p in expected]
        np.testing.assert_allclose(seen["scores"][row], [p["score"] for p in expected], rtol=1e-5, atol=1e-6)


@TRANSPORTS
def test_tritonclient_embeds_as_rest_does(triton, rest_answers, transport):
    (vector,) = triton[transport]["features"]
    assert len(vector) == 1280
    np.testing.assert_allclose(vector, rest_answers["features"], atol=1e-4)


@TRANSPORTS
def test_requested_output_only_and_default_top_k(triton, rest_answers, transport):
    assert triton[transport]["labels_only"] == ["labels"]
    (labels,) = triton[transport]["labels_only_value"]
    assert len(labels) == 5 and labels[:3] == [p["label"] for p in rest_answers["chelsea"]["predictions"]]


@TRANSPORTS
def test_health_and_metadata(triton, transport):
    seen = triton[transport]
    assert seen["live"] and seen["ready"] and seen["model_ready"] and seen["features_ready"]
    assert seen["server"]["name"] == "convscope" and "binary_tensor_data" in seen["server"]["extensions"]
    metadata = seen["metadata"]
    assert metadata["name"] == FEATURES and metadata["platform"] == "pytorch_torchserve"
    assert metadata["versions"] == ["1"]
    shapes = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]])
              for t in metadata["inputs"] + metadata["outputs"]}
    assert shapes == {"image": ("BYTES", [-1]), "features": ("FP32", [-1, 1280])}


@TRANSPORTS
def test_error_statuses(triton, transport):
    seen = triton[transport]
    codes = {"http": {"bad_image": "400", "unknown_model": "404", "unknown_infer": "404", "no_token": "401",
                      "bad_top_k": "400"},
             "grpc": {"bad_image": "StatusCode.INVALID_ARGUMENT", "unknown_model": "StatusCode.NOT_FOUND",
                      "unknown_infer": "StatusCode.NOT_FOUND", "no_token": "StatusCode.UNAUTHENTICATED",
                      "bad_top_k": "StatusCode.INVALID_ARGUMENT"}}[transport]
    assert {case: seen[case]["status"] for case in codes} == codes, seen
    assert "element 1" in seen["bad_image"]["message"]
    assert "efficientnet_lite0-features" in seen["unknown_model"]["message"]  # says which models OIP serves


# Beyond tritonclient: plain REST and gRPC ---------------------------------------------------------

@pytest.fixture(scope="module")
def oip_url(server) -> str:
    """OIP REST, once the gateway has seen every model ready (it polls TorchServe every second)."""
    url = f"http://127.0.0.1:{server.running.ports['gateway_http']}/v2"
    for _ in range(120):
        if requests.get(f"{url}/health/ready", timeout=10).status_code == 200:
            return url
        time.sleep(0.5)
    pytest.fail(f"OIP REST not ready:\n{server.running.log_tail(40)}")


def test_rest_json_request_and_answer_and_versions(server, oip_url):
    auth = {"Authorization": f"Bearer {server.running.keys['inference']}"}
    raw = encode_bytes([photo_bytes("chelsea")])
    header = json.dumps({"id": "a1", "parameters": {"top_k": 2},
                         "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1, 1],
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "classes"}, {"name": "scores", "parameters": {"binary_data": True}}]})
    answer = requests.post(f"{oip_url}/models/{CLASSIFY}/versions/1/infer", data=header.encode() + raw, timeout=120,
                           headers={**auth, "Inference-Header-Content-Length": str(len(header))})
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["Inference-Header-Content-Length"])
    doc = json.loads(answer.content[:length])
    assert doc["id"] == "a1" and doc["model_name"] == CLASSIFY and doc["model_version"] == "1"
    classes, scores = doc["outputs"]
    assert classes == {"name": "classes", "datatype": "INT64", "shape": [1, 2], "data": classes["data"]}
    assert classes["data"][0] == 285
    assert scores["parameters"] == {"binary_data_size": 8} and len(answer.content) == length + 8
    assert decode_raw("FP32", answer.content[length:])[0] > 0.5
    # the rest of the REST face: errors as {"error": ...}, other versions 404
    for method, path, status in (("get", f"/models/{CLASSIFY}/versions/2", 404),
                                 ("get", "/models/digits-cam/ready", 404), ("post", f"/models/{CLASSIFY}/infer", 400)):
        answer = getattr(requests, method)(oip_url + path, headers=auth, timeout=30, data=b"{}")
        assert answer.status_code == status and set(answer.json()) == {"error"}, answer.text
    ready = requests.get(f"{oip_url}/models/digits/versions/1/ready", timeout=30)
    assert ready.status_code == 200 and ready.json() == {"name": "digits", "ready": True}
    assert requests.get(f"{oip_url}/health/live", timeout=30).status_code == 200


def test_grpc_bytes_contents(server):
    token = (("authorization", f"Bearer {server.running.keys['inference']}"),)
    with grpc.insecure_channel(f"127.0.0.1:{server.running.ports['gateway_grpc']}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name=CLASSIFY)
        image = request.inputs.add(name="image", datatype="BYTES", shape=[1])
        image.contents.bytes_contents.append(photo_bytes("chelsea"))
        request.parameters["top_k"].int64_param = 1
        answer = stub.ModelInfer(request, metadata=token, timeout=120)
        assert [o.name for o in answer.outputs] == ["scores", "classes", "labels"]
        assert decode_raw("INT64", answer.raw_output_contents[1]) == [285]
        assert decode_raw("BYTES", answer.raw_output_contents[2]) == [b"Egyptian cat"]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=120)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert dict(caught.value.trailing_metadata())["convscope-error-code"] == "401"
