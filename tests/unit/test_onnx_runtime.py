"""The ONNX Runtime backend (issue 9): selected per model by the spec, exported at archive time,
proven equal to PyTorch on real inputs, refused when tampered with.

Parity is measured on the built archives' own models (``runtime = "onnx"`` archived into a temp
store): the 1,000 held-out MNIST digits for ``digits``; for ``efficientnet_lite0`` the build's
gallery photos and the scikit-image photos the other tests use. Bars: max |logit difference|
<= 1e-3 and 100% top-1 agreement; feature vectors and CAM maps within 1e-3 of their scale.
"""

from __future__ import annotations

import importlib
import json
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from ts.context import Context, RequestProcessor

from convscope.build.archive import archive, check_twins
from convscope.config import EngineConfig
from convscope.endpoints import ClassifyEndpoint
from convscope.envelope import Payload
from convscope.errors import SpecError
from convscope.explain import METHODS, Job
from convscope.models import load_model
from convscope.models.weights import sha256_of
from convscope.preprocess import decode_image, prepare_input
from convscope.spec import load_spec, parse_spec, read_spec_document
from tests.imaging import held_out_digits, photo_bytes

TOLERANCE = 1e-3
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut")


def _archived_onnx(store: Path, name: str, folder: Path) -> Path:
    """``<name>`` archived with ``runtime = "onnx"`` and unpacked as TorchServe unpacks it."""
    doc = read_spec_document(store / f"{name}.toml")
    doc["runtime"], doc["weights"] = "onnx", str((store / doc["weights"]).resolve())
    if isinstance(doc["labels"], str):
        doc["labels"] = str((store / doc["labels"]).resolve())
    recipe = folder / f"{name}.json"
    recipe.write_text(json.dumps(doc))
    mar = archive(recipe, folder / "store")
    with zipfile.ZipFile(mar) as packed:
        packed.extractall(folder / name)
    return folder / name


def _load(model_dir: Path, threads: int = 1):
    return load_model(load_spec(model_dir / "spec.json", confine=True), threads=threads)


# The PyTorch side of every comparison. The built-in specs say runtime = "onnx" (the conftest's
# models run on ONNX Runtime), so this module loads their PyTorch twins under the same names.
@pytest.fixture(scope="module")
def digits_model(store):
    return load_model(replace(load_spec(store / "digits.toml"), runtime="torch"))


@pytest.fixture(scope="module")
def lite0(store):
    return load_model(replace(load_spec(store / "efficientnet_lite0.toml"), runtime="torch"))


@pytest.fixture(scope="module")
def digits_dir(store, tmp_path_factory):
    return _archived_onnx(store, "digits", tmp_path_factory.mktemp("onnx-digits"))


@pytest.fixture(scope="module")
def digits_onnx(digits_dir):
    return _load(digits_dir)


@pytest.fixture(scope="module")
def lite0_onnx(store, tmp_path_factory):
    return _load(_archived_onnx(store, "efficientnet_lite0", tmp_path_factory.mktemp("onnx-lite0")))


def _inputs(images: list[bytes], spec) -> torch.Tensor:
    """float32 [N, C, H, W] through the one preprocessing path."""
    return torch.stack([prepare_input(decode_image(b, EngineConfig()).image, spec.input)[0] for b in images])


def parity(torch_model, onnx_model, inputs: torch.Tensor, batch: int) -> dict[str, float]:
    """Worst differences between the two runtimes over ``inputs``, ``batch`` at a time."""
    assert onnx_model.onnx is not None and torch_model.onnx is None
    worst = {"logits": 0.0, "top1_agreement": 1.0, "feature_cosine": 1.0, "features": 0.0, "cam": 0.0}
    agree = 0
    for start in range(0, len(inputs), batch):
        x = inputs[start:start + batch]
        ours, theirs = onnx_model.forward(x), torch_model.forward(x)
        agree += int((ours.logits.argmax(1) == theirs.logits.argmax(1)).sum())
        cosine = torch.nn.functional.cosine_similarity(ours.features, theirs.features, dim=1)
        worst["feature_cosine"] = min(worst["feature_cosine"], float(cosine.min()))
        for name in ("logits", "features", "cam"):
            difference = float((getattr(ours, name) - getattr(theirs, name)).abs().max())
            worst[name] = max(worst[name], difference)
    worst["top1_agreement"] = agree / len(inputs)
    return worst


def _assert_equal(measured: dict[str, float], cam_scale: float) -> None:
    assert measured["logits"] <= TOLERANCE, measured
    assert measured["top1_agreement"] == 1.0, measured
    assert measured["feature_cosine"] >= 1 - 1e-6 and measured["features"] <= TOLERANCE, measured
    assert measured["cam"] <= TOLERANCE * max(1.0, cam_scale), measured


# --- the spec option --------------------------------------------------------------------------

def _doc(store: Path, **changes) -> dict:
    doc = read_spec_document(store / "digits.toml")
    doc.pop("runtime", None)  # the built-in spec chooses onnx; the default is what is tested
    return {**doc, **changes}


def test_runtime_defaults_to_torch_and_is_validated(store):
    assert parse_spec(_doc(store), store).runtime == "torch"
    assert parse_spec(_doc(store, runtime="onnx"), store).runtime == "onnx"
    for bad in ("tensorrt", "ONNX", 1):
        with pytest.raises(SpecError, match="runtime must be one of"):
            parse_spec(_doc(store, runtime=bad), store)
    with pytest.raises(SpecError, match="only with runtime = 'onnx'"):
        parse_spec(_doc(store, onnx="model.onnx"), store)


def test_an_archived_onnx_path_must_stay_in_the_archive(digits_dir):
    doc = read_spec_document(digits_dir / "spec.json")
    with pytest.raises(SpecError, match="outside the model's folder"):
        parse_spec({**doc, "onnx": "../../elsewhere.onnx"}, digits_dir, confine=True)


def test_a_torch_model_never_needs_onnxruntime(digits_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    model = load_model(digits_model.spec)
    assert model.onnx is None and model.forward(torch.zeros(1, *model.input_shape)).logits.shape == (1, 10)
    with pytest.raises(SpecError, match="needs ONNX Runtime"):
        load_model(replace(digits_model.spec, runtime="onnx"))


# --- the archive ------------------------------------------------------------------------------

def test_the_archive_holds_the_graph_its_digest_and_the_pytorch_weights(digits_dir, digits_onnx):
    doc = json.loads((digits_dir / "spec.json").read_text())
    assert doc["runtime"] == "onnx" and doc["onnx"] == "model.onnx"
    assert doc["onnx_sha256"] == sha256_of(digits_dir / "model.onnx")
    assert (digits_dir / "weights.safetensors").is_file()  # gradient methods use the PyTorch twin
    outputs = {o.name: o.shape for o in digits_onnx.onnx.session.get_outputs()}
    assert outputs == {"logits": ["batch", 10], "features": ["batch", 128], "cam": ["batch", 128, 7, 7]}


def test_a_tampered_graph_is_refused(digits_dir):
    graph = digits_dir / "model.onnx"
    original = graph.read_bytes()
    try:
        tampered = bytearray(original)
        tampered[-100] ^= 0xFF  # one weight byte of the last initializer
        graph.write_bytes(bytes(tampered))
        with pytest.raises(SpecError, match="ONNX file model.onnx does not match the SHA-256"):
            _load(digits_dir)
        graph.unlink()
        with pytest.raises(SpecError, match="unreadable"):
            _load(digits_dir)
    finally:
        graph.write_bytes(original)


def test_the_archive_time_check_refuses_an_export_of_other_weights(digits_model, digits_onnx):
    assert check_twins(digits_model, digits_onnx) <= TOLERANCE
    other = load_model(digits_model.spec)
    with torch.no_grad():
        other.module.fc.bias.add_(0.5)  # a twin that computes something else
    with pytest.raises(SpecError, match="differs from PyTorch"):
        check_twins(other, digits_onnx)


def test_threads_are_set_as_configured(digits_dir):
    for threads in (1, 2):
        session = _load(digits_dir, threads).onnx
        assert session.threads == threads
        assert session.session.get_session_options().inter_op_num_threads == 1
        assert session.providers == ["CPUExecutionProvider"]


# --- parity -----------------------------------------------------------------------------------

def test_digits_parity_on_1000_held_out_digits(digits_model, digits_onnx):
    digits = held_out_digits(per_class=100)
    assert len(digits) == 1000
    inputs = _inputs([image for _, image in digits], digits_model.spec)
    _assert_equal(parity(digits_model, digits_onnx, inputs, batch=16), cam_scale=1.0)


def test_efficientnet_parity_on_the_photos(store, lite0, lite0_onnx):
    files = sorted((store / "build" / "photos").rglob("*.png"))
    assert len(files) >= 40, "the build's gallery photos are missing: run `make store`"
    images = [f.read_bytes() for f in files] + [photo_bytes(name) for name in SKIMAGE_PHOTOS]
    inputs = _inputs(images, lite0.spec)
    _assert_equal(parity(lite0, lite0_onnx, inputs, batch=8), cam_scale=1.0)


def _counting(session, monkeypatch) -> list[int]:
    calls: list[int] = []
    run = session.run
    monkeypatch.setattr(session, "run", lambda inputs, taps=True: calls.append(len(inputs)) or run(inputs, taps))
    return calls


def _maps(model, method: str, x: torch.Tensor, targets: torch.Tensor, options: dict) -> torch.Tensor:
    return METHODS[method].explain(Job(model, x, targets, options, 32, model.layers.cam))


@pytest.mark.parametrize("method, options, on_ort", [
    ("scorecam", {}, True),
    ("occlusion", {"window": 7, "stride": 3, "fill": None}, True),
    ("gradcam", {}, False), ("layercam", {}, False), ("integrated_gradients", {"steps": 8, "baseline": "black"}, False)])
def test_explanations_agree_and_only_forward_passes_run_on_ort(digits_model, digits_onnx, monkeypatch,
                                                               method, options, on_ort):
    digits = held_out_digits(per_class=1)[::3]  # 0, 3, 6, 9
    x = _inputs([image for _, image in digits], digits_model.spec)
    targets = torch.tensor([label for label, _ in digits])
    expected = _maps(digits_model, method, x, targets, options)
    calls = _counting(digits_onnx.onnx, monkeypatch)
    got = _maps(digits_onnx, method, x, targets, options)
    assert bool(calls) == on_ort  # gradient methods use the PyTorch twin
    assert float((got - expected).abs().max()) <= TOLERANCE * float(expected.abs().max())


def test_efficientnet_occlusion_and_cam_agree_on_a_photo(lite0, lite0_onnx):
    x = _inputs([photo_bytes("chelsea")], lite0.spec)
    target = lite0.forward(x, taps=False).logits.argmax(1)
    for method, options in (("occlusion", {"window": 56, "stride": 28, "fill": None}), ("cam", {})):
        expected = _maps(lite0, method, x, target, options)
        got = _maps(lite0_onnx, method, x, target, options)
        assert float((got - expected).abs().max()) <= TOLERANCE * float(expected.abs().max()), method


# --- the handler ------------------------------------------------------------------------------

def _handler(model_dir: Path, convscope: dict):
    """The archived handler's ``initialize`` with a real ``ts.context.Context``, as a worker runs it."""
    sys.path.insert(0, str(model_dir))
    try:
        handler = importlib.import_module("convscope_handler").ConvScopeHandler()
        handler.initialize(Context("digits", str(model_dir), {}, 1, None, "0.12.0",
                                   model_yaml_config={"convscope": convscope}))
        return handler
    finally:
        sys.path.remove(str(model_dir))
        sys.modules.pop("convscope_handler", None)


def test_the_handler_serves_classify_on_onnx_like_torch(digits_dir, digits_model):
    threads = torch.get_num_threads()
    try:
        handler = _handler(digits_dir, {"intra_op_threads": 2})
    finally:
        torch.set_num_threads(threads)  # initialize sets the process's torch threads
    assert handler.endpoint.model.onnx.threads == 2
    rows = [{"data": image, "top_k": b"3"} for _, image in held_out_digits(per_class=1)]
    context = Context("digits", str(digits_dir), {}, len(rows), None, "0.12.0")
    context.request_processor = [RequestProcessor({}) for _ in rows]
    served = [json.loads(answer) for answer in handler.handle(rows, context)]
    reference = ClassifyEndpoint(digits_model, EngineConfig()).handle([Payload(row) for row in rows])
    for ours, theirs in zip(served, (r.to_dict() for r in reference), strict=True):
        assert [p["class"] for p in ours["predictions"]] == [p["class"] for p in theirs["predictions"]]
        for a, b in zip(ours["predictions"], theirs["predictions"]):
            assert abs(a["score"] - b["score"]) <= 1e-5
