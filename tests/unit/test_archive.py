"""Archiving a user's own model from a spec and a weights file, and how it is registered."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from convscope.build.archive import archive
from convscope.errors import SpecError
from convscope.models import build_architecture
from convscope.serving import registrations, render_config

SPEC = """
name = "parts"
arch = "torchvision:resnet18"
num_classes = 3
weights = "parts.safetensors"
labels = ["bolt", "nut", "washer"]
endpoints = ["classify", "features"]

[input]
size = [64, 64]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[serving.features]
batch_size = 4
max_batch_delay_ms = 20
"""


@pytest.fixture
def user_model(tmp_path):
    torch.manual_seed(0)
    state = build_architecture("torchvision:resnet18", 3).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "parts.safetensors")
    (tmp_path / "parts.toml").write_text(SPEC)
    return tmp_path / "parts.toml"


def test_archive_holds_spec_weights_labels_and_handler(user_model, tmp_path):
    mar = archive(user_model, tmp_path / "store")
    with zipfile.ZipFile(mar) as packed:
        names = set(packed.namelist())
        spec = json.loads(packed.read("spec.json"))
        card = json.loads(packed.read("card.json"))
    assert {"spec.json", "labels.json", "weights.safetensors", "convscope_handler.py",
            "MAR-INF/MANIFEST.json", "model-config.yaml"} <= names
    assert spec["weights"] == "weights.safetensors" and spec["labels"] == "labels.json"
    assert card["name"] == "parts" and card["num_classes"] == 3 and card["runtime"] == "torch"


def test_each_endpoint_gets_its_own_registration(user_model, tmp_path):
    store = tmp_path / "store"
    archive(user_model, store)
    regs = {r.name: r for r in registrations(store)}
    assert set(regs) == {"parts", "parts-features"}
    assert regs["parts-features"].serving.batch_size == 4
    config = render_config(store, ports={"inference": 18123})
    assert "inference_address=http://127.0.0.1:18123" in config
    assert "load_models=parts=parts.mar,parts-features=parts.mar" in config
    models = json.loads(next(l for l in config.splitlines() if l.startswith("models="))[7:])
    assert models["parts-features"]["1.0"]["maxBatchDelay"] == 20
    assert "enable_model_api=false" in config and "disable_token_authorization=false" in config


def test_weights_that_do_not_fit_fail_at_archive_time(user_model, tmp_path):
    state = build_architecture("torchvision:resnet18", 5).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "wrong.safetensors")
    with pytest.raises(SpecError, match="do not fit"):
        archive(user_model, tmp_path / "store", weights=tmp_path / "wrong.safetensors")
    assert not (tmp_path / "store" / "parts.mar").exists()
