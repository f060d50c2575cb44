"""Archive a model for TorchServe from a spec and its weights.

    convscope-archive --spec my_model.toml [--weights my.safetensors] [--export-path model_store]

The spec is validated and the model is loaded once (weights must fit the architecture and the
feature and CAM layers must resolve) before anything is written, so a broken model fails here,
not in a worker. The ``.mar`` holds the handler, ``spec.json`` (the spec with paths made
archive-relative), the weights and ``labels.json``; it is served under one name per endpoint by
``convscope-serve``. For ``runtime = "onnx"`` it also holds ``model.onnx`` (logits, feature
vector and CAM map as outputs, dynamic batch), its SHA-256 recorded in the spec, and checked
against the PyTorch model before the archive is written (docs/onnx.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import SpecError
from ..index import SEED_FILE
from ..inspect.examples import SEED_FILE as ACTIVATIONS_SEED
from ..inspect.examples import layer_rows, stored_layers
from ..inspect.filters import first_conv
from ..inspect.receptive import trace_layers
from ..models import load_model
from ..models.forward import OUTPUT_NAMES
from ..models.weights import sha256_of
from ..spec import load_spec, parse_spec, read_spec_document

CARD_FILE = "card.json"
"""The model card inside every archive (``model_card``)."""
HANDLER = Path(__file__).resolve().parents[2] / "handlers" / "convscope_handler.py"
VERSION = "1.0"


ONNX_FILE = "model.onnx"
PARITY_TOLERANCE = 1e-3
"""Largest |difference| allowed between the ONNX and PyTorch outputs on the archive-time check."""


def _archive_document(spec_path: Path, weights_file: Path, onnx_file: Path | None) -> dict:
    doc = read_spec_document(spec_path)
    doc["weights"], doc["labels"] = weights_file.name, "labels.json"
    doc["weights_sha256"] = sha256_of(weights_file)  # checked by every worker before it loads
    if onnx_file is not None:
        doc["onnx"], doc["onnx_sha256"] = onnx_file.name, sha256_of(onnx_file)
    return doc


def _export(spec, model, stage: Path) -> Path | None:
    """``model.onnx`` in ``stage`` when the spec asks for ONNX Runtime; None otherwise."""
    if spec.runtime != "onnx":
        return None
    from ..models.onnx_runtime import export_onnx

    export_onnx(model.module, model.layers, model.input_shape, stage / ONNX_FILE)
    return stage / ONNX_FILE


def check_twins(torch_model, onnx_model, batch: int = 3) -> float:
    """The largest |difference| of logits, features and CAM maps between the two models on a
    fixed random batch; a ``SpecError`` above ``PARITY_TOLERANCE`` (relative to the outputs'
    scale): an export that computes something else never reaches a worker."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn((batch, *torch_model.input_shape), generator=generator).to(torch_model.device)
    ours, theirs = onnx_model.forward(inputs), torch_model.forward(inputs)
    worst = 0.0
    for name in OUTPUT_NAMES:
        a, b = getattr(ours, name).float(), getattr(theirs, name).float()
        difference = float((a - b).abs().max())
        if difference > PARITY_TOLERANCE * max(1.0, float(b.abs().max())):
            raise SpecError(f"the ONNX export of {torch_model.spec.name} differs from PyTorch by "
                            f"{difference:.3g} in {name}: refused")
        worst = max(worst, difference)
    return worst


def model_config(spec) -> str:
    """The archive's TorchServe model config. Its ``responseTimeout`` takes precedence over the
    per-registration one in config.properties (measured: without it every registration got
    TorchServe's default 120 s), and it is one per archive, so it is the largest of the
    endpoints' timeouts (600 s for CAM by default): a generous bound that still ends a hung
    worker."""
    timeout = max(spec.serving_for(endpoint).response_timeout_s for endpoint in spec.endpoints)
    return f"responseTimeout: {timeout}\nconvscope: {{}}\n"


def model_card(spec, model) -> dict:
    """What a server outside the worker (the gRPC gateway) needs to describe the model without
    loading it: names, sizes and endpoints, measured from the loaded model, and its inspectable
    layers with their receptive fields (``op=layers``)."""
    layers = trace_layers(model.module, model.input_shape)
    stored = stored_layers(model, layers)
    return {"layers": list(layer_rows(layers, stored)), "stored_layers": list(stored),
            "first_conv": first_conv(model.module), **{"name": spec.name, "description": spec.description, "num_classes": spec.num_classes,
            "feature_dim": model.layers.feature_dim, "feature_layer": model.layers.feature.label,
            "cam_layer": model.layers.cam.label, "endpoints": list(spec.endpoints),
            "input_height": spec.input.size[0], "input_width": spec.input.size[1],
            "input_channels": spec.input.channels, "runtime": spec.runtime}}


def archive(spec_path: Path, export_path: Path, weights: Path | None = None,
            handler: Path = HANDLER, gallery: Path | None = None, activations: Path | None = None) -> Path:
    """Write ``<export_path>/<name>.mar``; return its path. ``gallery``: an index snapshot that
    seeds ``<name>-neighbours`` the first time it starts; ``activations``: the top-activation
    store built with it (``<name>-inspect``'s ``top_examples``)."""
    spec = load_spec(spec_path, weights)
    model = load_model(replace(spec, runtime="torch"))  # the PyTorch twin; ONNX is exported below
    print(f"{spec.name}: {spec.arch}, feature layer {model.layers.feature.label} "
          f"({model.layers.feature_dim}-dim), CAM layer {model.layers.cam.label} {model.layers.cam_shape}")
    export_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convscope-archive-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        weights_file = stage / f"weights{spec.weights.suffix}"
        shutil.copyfile(spec.weights, weights_file)
        (stage / "labels.json").write_text(json.dumps(list(spec.labels)))
        onnx_file = _export(spec, model, stage)
        doc = _archive_document(spec_path, weights_file, onnx_file)
        (stage / "spec.json").write_text(json.dumps(doc, indent=2))
        archived = parse_spec(doc, stage, confine=True)  # the archived spec must validate on its own
        if onnx_file is not None:
            print(f"{spec.name}: {ONNX_FILE} matches PyTorch within "
                  f"{check_twins(model, load_model(archived)):.2g}")
        (stage / CARD_FILE).write_text(json.dumps(model_card(spec, model), indent=2))
        (stage / "model-config.yaml").write_text(model_config(spec))
        extra = [stage / "spec.json", stage / "labels.json", stage / CARD_FILE]
        if onnx_file is not None:
            extra.append(onnx_file)
        if gallery is not None:
            extra.append(stage / SEED_FILE)
            shutil.copyfile(gallery, extra[-1])
        if activations is not None:
            extra.append(stage / ACTIVATIONS_SEED)
            shutil.copyfile(activations, extra[-1])
        # torch-model-archiver stages in $TMPDIR/<model name> and deletes it: keep that private.
        env = {**os.environ, "TMPDIR": tmp}
        command = [str(Path(sys.executable).with_name("torch-model-archiver")),
                   "--model-name", spec.name, "--version", VERSION,
                   "--serialized-file", str(weights_file), "--handler", str(handler),
                   "--extra-files", ",".join(str(p) for p in extra),
                   "--config-file", str(stage / "model-config.yaml"),
                   "--export-path", str(export_path), "--force"]
        subprocess.run(command, check=True, env=env)
    out = export_path / f"{spec.name}.mar"
    print(f"{spec.name}: wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True, help="model spec (TOML)")
    parser.add_argument("--weights", type=Path, help="weights file overriding the spec's")
    parser.add_argument("--export-path", type=Path, default=Path("model_store"))
    parser.add_argument("--gallery", type=Path, help="an index snapshot seeding <name>-neighbours")
    parser.add_argument("--activations", type=Path, help="the top-activation store built with --gallery")
    args = parser.parse_args(argv)
    archive(args.spec, args.export_path, args.weights, gallery=args.gallery, activations=args.activations)


if __name__ == "__main__":
    main()
