"""Archive a model for TorchServe from a spec and its weights.

    convscope-archive --spec my_model.toml [--weights my.safetensors] [--export-path model_store]

The spec is validated and the model is loaded once (weights must fit the architecture and the
feature and CAM layers must resolve) before anything is written, so a broken model fails here,
not in a worker. The ``.mar`` holds the handler, ``spec.json`` (the spec with paths made
archive-relative), the weights and ``labels.json``; it is served under one name per endpoint by
``convscope-serve``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..index import SEED_FILE
from ..models import load_model
from ..models.weights import sha256_of
from ..spec import load_spec, parse_spec, read_spec_document

CARD_FILE = "card.json"
"""The model card inside every archive (``model_card``)."""
HANDLER = Path(__file__).resolve().parents[2] / "handlers" / "convscope_handler.py"
VERSION = "1.0"


def _archive_document(spec_path: Path, weights_file: Path) -> dict:
    doc = read_spec_document(spec_path)
    doc["weights"], doc["labels"] = weights_file.name, "labels.json"
    doc["weights_sha256"] = sha256_of(weights_file)  # checked by every worker before it loads
    return doc


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
    loading it: names, sizes and endpoints, measured from the loaded model."""
    return {"name": spec.name, "description": spec.description, "num_classes": spec.num_classes,
            "feature_dim": model.layers.feature_dim, "feature_layer": model.layers.feature.label,
            "cam_layer": model.layers.cam.label, "endpoints": list(spec.endpoints),
            "input_height": spec.input.size[0], "input_width": spec.input.size[1],
            "input_channels": spec.input.channels}


def archive(spec_path: Path, export_path: Path, weights: Path | None = None,
            handler: Path = HANDLER, gallery: Path | None = None) -> Path:
    """Write ``<export_path>/<name>.mar``; return its path. ``gallery``: an index snapshot that
    seeds ``<name>-neighbours`` the first time it starts."""
    spec = load_spec(spec_path, weights)
    model = load_model(spec)
    print(f"{spec.name}: {spec.arch}, feature layer {model.layers.feature.label} "
          f"({model.layers.feature_dim}-dim), CAM layer {model.layers.cam.label} {model.layers.cam_shape}")
    export_path.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convscope-archive-") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        weights_file = stage / f"weights{spec.weights.suffix}"
        shutil.copyfile(spec.weights, weights_file)
        (stage / "labels.json").write_text(json.dumps(list(spec.labels)))
        doc = _archive_document(spec_path, weights_file)
        (stage / "spec.json").write_text(json.dumps(doc, indent=2))
        parse_spec(doc, stage, confine=True)  # the archived spec must validate on its own
        (stage / CARD_FILE).write_text(json.dumps(model_card(spec, model), indent=2))
        (stage / "model-config.yaml").write_text(model_config(spec))
        extra = [stage / "spec.json", stage / "labels.json", stage / CARD_FILE]
        if gallery is not None:
            extra.append(stage / SEED_FILE)
            shutil.copyfile(gallery, extra[-1])
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
    args = parser.parse_args(argv)
    archive(args.spec, args.export_path, args.weights, gallery=args.gallery)


if __name__ == "__main__":
    main()
