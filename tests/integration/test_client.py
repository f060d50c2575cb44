"""The Python client (clients/python) against a real server: REST (TorchServe) and the typed
gRPC gateway return equal typed results (the inspect ones included), errors are one class
whichever transport saw them, the CLI writes maps and top-example patches that open as images,
and the client installs into a fresh venv without torch and classifies from there.

Tests named ``test_rest_*`` or parametrized ``[rest]`` need only TorchServe (``-k rest``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from convscope_client import (
    AsyncClient,
    Classification,
    Client,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unimplemented,
)
from PIL import Image

from tests.imaging import held_out_digits

pytestmark = pytest.mark.integration
CLIENT_SOURCE = Path(__file__).resolve().parents[2] / "clients" / "python"
TIMEOUT = 300.0  # generous: CAM workers on a 2-core machine


@pytest.fixture(scope="module")
def digits() -> list[tuple[int, bytes]]:
    return held_out_digits(1)  # (label, 28x28 PNG) for 0..9


@pytest.fixture(scope="module")
def seven(digits) -> bytes:
    return digits[7][1]


def _address(server, transport: str) -> str:
    return server.url if transport == "rest" else f"127.0.0.1:{server.running.ports['gateway_grpc']}"


def _client(server, transport: str, **options) -> Client:
    options = {"token": server.running.keys["inference"], "timeout": TIMEOUT, **options}
    return Client(_address(server, transport), transport, **options)


@pytest.fixture(scope="module")
def rest(server):
    with _client(server, "rest") as client:
        yield client


@pytest.fixture(scope="module")
def typed(server):
    with _client(server, "grpc") as client:
        yield client


@pytest.fixture(params=["rest", "grpc"])
def client(request, rest, typed) -> Client:
    return rest if request.param == "rest" else typed


# --- REST vs gRPC parity -----------------------------------------------------------------------

CASES = {
    "classify": lambda c, png: c.classify("digits", png, top_k=3),
    "features": lambda c, png: c.features("digits", png),
    "features-raw": lambda c, png: c.features("digits", png, normalize=False),
    "saliency-smoothgrad": lambda c, png: c.saliency(
        "digits", png, method="smoothgrad", samples=4, noise=0.1, seed=3, alpha=0.3, clip_high=99.0,
        outputs=("heatmap", "overlay", "array")),
    "saliency-occlusion": lambda c, png: c.saliency(
        "digits", png, method="occlusion", window=7, stride=7, fill=0.25, polarity="absolute", outputs="array"),
    "cam-gradcam_pp": lambda c, png: c.cam("digits", png, method="gradcam_pp", target=3, alpha=0.7,
                                           outputs="heatmap,overlay,array"),
    "neighbours": lambda c, png: c.neighbours("digits", png, k=5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_grpc_answers_equal_the_http_ones(rest, typed, seven, case):
    over_rest, over_grpc = CASES[case](rest, seven), CASES[case](typed, seven)
    assert over_rest == over_grpc


INSPECT_CASES = {
    "inspect_layers": lambda c, png: c.inspect_layers("digits"),
    "feature_maps": lambda c, png: c.feature_maps("digits", png, layer="features.2", top=4, outputs="grid,array,raw"),
    "feature_maps-channels": lambda c, png: c.feature_maps("digits", png, channels=[17, 3, 40], outputs=("raw",)),
    "filters": lambda c, png: c.filters("digits", outputs="grid,array"),
    "top_examples": lambda c, png: c.top_examples("digits", 3, k=4, patches=True),
    "top_examples-second-layer": lambda c, png: c.top_examples("digits", 10, layer="features.2", k=2),
}


@pytest.mark.parametrize("case", sorted(INSPECT_CASES))
def test_inspect_answers_over_grpc_equal_the_http_ones(rest, typed, seven, case):
    over_rest, over_grpc = INSPECT_CASES[case](rest, seven), INSPECT_CASES[case](typed, seven)
    assert over_rest == over_grpc
    if case == "feature_maps":  # what was asked for, in the documented shapes
        means = [c.mean for c in over_rest.channels]
        assert means == sorted(means, reverse=True)  # channels=top: the largest mean first
        assert over_rest.array.dtype == np.float16 and over_rest.array.shape == (4, 28, 28)
        assert over_rest.raw.shape == (4, *over_rest.shape[1:]) == (4, 14, 14)
        assert Image.open(io.BytesIO(over_rest.grid_png)).format == "PNG"
    if case == "feature_maps-channels":
        assert [c.channel for c in over_rest.channels] == [17, 3, 40] and over_rest.grid_png is None
    if case.startswith("top_examples"):
        values = [e.activation for e in over_rest.examples]
        assert values == sorted(values, reverse=True) and len(values) == (4 if case == "top_examples" else 2)
        assert all((e.patch_png is not None) == (case == "top_examples") for e in over_rest.examples)


def test_rest_results_are_typed_and_sane(rest, digits, seven):
    for label, png in digits:
        answer = rest.classify("digits", png)
        assert isinstance(answer, Classification) and answer.predictions[0].class_index == label
    features = rest.features("digits", seven)
    assert features.vector.dtype == np.float32 and features.dim == 128
    assert abs(float(np.linalg.norm(features.vector)) - 1) < 1e-4
    maps = CASES["saliency-smoothgrad"](rest, seven)
    assert maps.array.dtype == np.float16 and maps.array.shape == (28, 28) == (maps.height, maps.width)
    assert float(maps.array.min()) >= 0 and float(maps.array.max()) <= 1
    assert Image.open(io.BytesIO(maps.overlay_png)).mode == "RGB"
    assert Image.open(io.BytesIO(maps.heatmap_png)).size == (28, 28)


def test_rest_index_add_search_delete(rest, seven):
    vector = rest.features("digits", seven).vector
    added = rest.index_add("digits", "client-test/rest", vector=vector, label="7", metadata={"by": "rest"})
    assert added.created is True and rest.index_stats("digits").count == added.count
    nearest = rest.neighbours("digits", vector=vector, k=1).neighbours[0]
    assert (nearest.id, nearest.label, nearest.metadata) == ("client-test/rest", "7", {"by": "rest"})
    assert rest.index_delete("digits", "client-test/rest").count == added.count - 1
    with pytest.raises(NotFound):
        rest.index_delete("digits", "client-test/rest")


def test_index_writes_cross_transports(rest, typed, seven):
    vector = rest.features("digits", seven).vector
    added = rest.index_add("digits", "client-test/both", vector=vector, metadata={"n": 1})
    assert rest.index_stats("digits") == typed.index_stats("digits")
    replaced = typed.index_add("digits", "client-test/both", image=seven, label="7")
    assert (replaced.created, replaced.count) == (False, added.count)
    assert typed.neighbours("digits", vector=vector, k=1) == rest.neighbours("digits", vector=vector, k=1)
    typed.index_delete("digits", "client-test/both")
    for client in (rest, typed):
        with pytest.raises(NotFound):
            client.index_delete("digits", "client-test/both")


# --- errors, deadlines, async ------------------------------------------------------------------

def test_bad_input_is_invalid_argument(client, seven):
    with pytest.raises(InvalidArgument) as bad_image:
        client.classify("digits", b"definitely not an image")
    assert (bad_image.value.type, bad_image.value.status) == ("InvalidImage", 400)
    with pytest.raises(InvalidArgument, match="samples") as not_applicable:
        client.saliency("digits", seven, method="gradient", samples=4)
    assert not_applicable.value.type == "BadRequest"


def test_unknown_model_is_not_found(client, seven):
    with pytest.raises(NotFound) as unknown:
        client.classify("no-such-model", seven)
    assert unknown.value.status == 404


def test_a_wrong_token_is_unauthenticated(server, seven, client):
    with _client(server, client.transport, token="wrong", retries=0) as wrong, pytest.raises(Unauthenticated):
        wrong.classify("digits", seven)


def test_a_short_timeout_is_deadline_exceeded(server, seven, client):
    with _client(server, client.transport, timeout=0.001) as hasty, pytest.raises(DeadlineExceeded):
        hasty.classify("efficientnet_lite0", seven)


def test_async_client_answers_as_the_blocking_one(server, client, digits):
    async def answers():
        async with AsyncClient(_address(server, client.transport), client.transport,
                               token=server.running.keys["inference"], timeout=TIMEOUT) as a:
            return await asyncio.gather(*(a.classify("digits", png, top_k=2) for _, png in digits[:4]),
                                        a.cam("digits", digits[7][1], method="layercam"))

    concurrent = asyncio.run(answers())
    for answer, (_, png) in zip(concurrent[:4], digits, strict=False):
        alone = client.classify("digits", png, top_k=2)
        # The concurrent ones were batched together: the same classes, scores to float32 rounding.
        assert [p.label for p in answer.predictions] == [p.label for p in alone.predictions]
        assert [p.score for p in answer.predictions] == pytest.approx([p.score for p in alone.predictions], rel=1e-4)
    assert concurrent[4] == client.cam("digits", digits[7][1], method="layercam")


def test_models_are_listed_over_grpc(typed):
    models = {m.model: m for m in typed.list_models()}
    assert {"digits", "efficientnet_lite0"} <= set(models)
    assert typed.model_metadata("digits") == models["digits"]
    assert (models["digits"].num_classes, models["digits"].feature_dim) == (10, 128)


def test_rest_has_no_model_listing(rest):
    with pytest.raises(Unimplemented, match="gRPC"):
        rest.list_models()


# --- the CLI -----------------------------------------------------------------------------------

def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without a token of its own or anything that leaks another venv in."""
    leaks = ("CONVSCOPE_TOKEN", "CONVSCOPE_KEY_FILE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {**{k: v for k, v in os.environ.items() if k not in leaks}, **extra}


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_cli_writes_an_overlay_png(server, seven, tmp_path, transport):
    image = tmp_path / "seven.png"
    image.write_bytes(seven)
    command = [str(Path(sys.executable).parent / "convscope-client"), "--url", _address(server, transport),
               "--transport", transport, "cam", "digits", str(image), "--output", "heatmap,overlay",
               "--out-dir", str(tmp_path / "maps")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          env=_clean_env(CONVSCOPE_TOKEN=server.running.keys["inference"]))
    assert done.returncode == 0, done.stderr
    overlay = tmp_path / "maps" / "seven.gradcam.overlay.png"
    assert f"wrote {overlay}" in done.stdout
    with Image.open(overlay) as picture:
        assert (picture.format, picture.mode, picture.size) == ("PNG", "RGB", (28, 28))
    assert (tmp_path / "maps" / "seven.gradcam.heatmap.png").exists()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_cli_writes_top_example_patches(server, rest, tmp_path, transport):
    out = tmp_path / "patches"
    command = [str(Path(sys.executable).parent / "convscope-client"), "--url", _address(server, transport),
               "--transport", transport, "inspect", "top-examples", "digits", "--channel", "3", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          env=_clean_env(CONVSCOPE_TOKEN=server.running.keys["inference"]))
    assert done.returncode == 0, done.stderr
    expected = rest.top_examples("digits", 3, patches=True)  # the server's default k, 9
    written = sorted(out.glob("patch-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    assert [p.name for p in written] == [f"patch-{rank}.png" for rank in range(1, len(expected.examples) + 1)]
    assert len(written) == 9
    for path, example in zip(written, expected.examples, strict=True):
        assert f"wrote {path}" in done.stdout
        assert path.read_bytes() == example.patch_png
        with Image.open(path) as patch:  # the box cut from the 28 x 28 gallery digit, kept at full size
            x0, y0, x1, y1 = example.box
            assert (patch.format, patch.size) == ("PNG", (x1 - x0, y1 - y0))


# --- a torch-free install ----------------------------------------------------------------------

def _run(*command: str | Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def torch_free_venv(tmp_path_factory) -> Path:
    """A plain venv (no system site packages) with the client installed from a copy of
    clients/python, dependencies from the machine's package index. Built once per session."""
    root = tmp_path_factory.mktemp("torch-free")
    venv, source = root / "venv", root / "convscope-client"
    shutil.copytree(CLIENT_SOURCE, source, ignore=shutil.ignore_patterns(
        "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"))
    created = _run(sys.executable, "-m", "venv", venv)
    assert created.returncode == 0, created.stderr
    pip = [venv / "bin" / "python", "-m", "pip"]
    probe = _run(*pip, "index", "versions", "httpx", timeout=180)
    if probe.returncode != 0:
        pytest.skip(f"pip cannot reach a package index: {probe.stderr.strip()[-500:]}")
    installed = _run(*pip, "install", source)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_cli_in_a_torch_free_venv(server, torch_free_venv, digits, tmp_path, transport):
    python, env = torch_free_venv / "bin" / "python", _clean_env()
    no_torch = _run(python, "-c", "import torch", cwd=tmp_path, env=env)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr
    where = _run(python, "-c", "import convscope_client; print(convscope_client.__file__)", cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(torch_free_venv)), where.stdout + where.stderr
    label, png = digits[3]
    image = tmp_path / "three.png"
    image.write_bytes(png)
    env["CONVSCOPE_KEY_FILE"] = str(server.run_dir / "key_file.json")  # the token, as a user finds it
    done = _run(torch_free_venv / "bin" / "convscope-client", "--url", _address(server, transport),
                "--transport", transport, "--json", "classify", "digits", image, "--top-k", "2",
                cwd=tmp_path, env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["image"] == str(image) and answer["predictions"][0]["class_index"] == label
