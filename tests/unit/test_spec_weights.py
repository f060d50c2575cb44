"""Specs are strict; weights load from safetensors or weights-only state dicts, never pickles."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from convscope.errors import SpecError
from convscope.models import build_architecture, load_model, load_weights, read_state_dict
from convscope.spec import load_spec, parse_spec

BASE = {"name": "tiny", "arch": "convscope:digits_cnn", "num_classes": 10,
        "weights": "w.safetensors", "labels": [str(i) for i in range(10)],
        "input": {"size": [28, 28], "channels": 1, "mean": [0.5], "std": [0.5]}}


def test_builtin_specs_parse(store):
    for path in store.glob("*.toml"):
        spec = load_spec(path)
        assert spec.weights.is_absolute() and len(spec.labels) == spec.num_classes


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown top-level"),
    ({"input": {"size": [28, 28], "channels": 2}}, "channels"),
    ({"input": {"size": [28, 28], "channels": 1, "resize": "stretch", "mean": [0], "std": [1]}}, "resize"),
    ({"input": {"size": [28, 28], "channels": 1, "mean": [0], "std": [0]}}, "std"),
    ({"labels": ["a"]}, "1 labels"),
    ({"endpoints": ["classify", "telepathy"]}, "unknown endpoint"),
    ({"serving": {"classify": {"batch": 4}}}, "unknown key"),
    ({"arch": "resnet18"}, "arch must be"),
])
def test_bad_specs_say_what_is_wrong(change, message, tmp_path):
    with pytest.raises(SpecError, match=message):
        parse_spec({**BASE, **change}, tmp_path)


def test_missing_key(tmp_path):
    doc = dict(BASE)
    del doc["num_classes"]
    with pytest.raises(SpecError, match="num_classes"):
        parse_spec(doc, tmp_path)


def _tiny_state():
    torch.manual_seed(0)
    return build_architecture("convscope:digits_cnn", 10, 1).state_dict()


def test_safetensors_and_state_dict_load_the_same(tmp_path):
    state = _tiny_state()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pt")
    a = read_state_dict(tmp_path / "w.safetensors")
    b = read_state_dict(tmp_path / "w.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    spec = parse_spec(BASE, tmp_path)
    model = load_model(spec)
    assert torch.equal(model.module.fc.weight, state["fc.weight"])


class _Payload:
    """Pickling this runs code on load: exactly what must never happen."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_code_running_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"fc.weight": _Payload(marker)}, handle)
    with pytest.raises(SpecError, match="refused"):
        read_state_dict(tmp_path / "evil.pt")
    assert not marker.exists(), "the pickle's payload ran"


def test_a_pickled_module_is_refused(tmp_path):
    torch.save(build_architecture("convscope:digits_cnn", 10, 1), tmp_path / "module.pt")
    with pytest.raises(SpecError):
        read_state_dict(tmp_path / "module.pt")


def test_weights_that_do_not_fit_are_a_spec_error(tmp_path):
    state = _tiny_state()
    state["fc.weight"] = torch.zeros(11, 128)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(SpecError, match="do not fit"):
        load_weights(build_architecture("convscope:digits_cnn", 10, 1), tmp_path / "w.pt")


def test_corrupt_safetensors_is_a_spec_error(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(SpecError, match="safetensors"):
        read_state_dict(tmp_path / "w.safetensors")


def test_no_unsafe_torch_load_in_the_repository():
    repo = Path(__file__).resolve().parents[2]
    offenders = []
    for path in repo.rglob("*.py"):
        if ".venv" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(repo)}:{number}")
    assert offenders == []
