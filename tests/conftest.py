"""Shared fixtures: the built model store and the built-in models loaded in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.config import EngineConfig
from convscope.endpoints import SUFFIXES, build_endpoint
from convscope.index import open_index
from convscope.models import load_model
from convscope.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "model_store"


@pytest.fixture(scope="session")
def store() -> Path:
    """The model store, built by `make store` (which `make test` runs first)."""
    missing = [n for n in ("digits", "efficientnet_lite0") if not (STORE / f"{n}.mar").exists()]
    if missing:
        pytest.fail(f"model archives {missing} are missing: run `make store` (make test does)")
    return STORE


@pytest.fixture(scope="session")
def lite0(store):
    return load_model(load_spec(store / "efficientnet_lite0.toml"))


@pytest.fixture(scope="session")
def digits_model(store):
    return load_model(load_spec(store / "digits.toml"))


def gallery(store: Path, name: str) -> Path:
    """The built-in gallery snapshot `make store` built for model ``name``."""
    return store / "build" / "galleries" / f"{name}.csidx"


@pytest.fixture(scope="session")
def endpoints(lite0, digits_model, store, tmp_path_factory):
    """In-process endpoints, keyed like TorchServe names: ``digits``, ``digits-features`` ...;
    the ``-neighbours`` ones over a private copy of the built gallery."""
    config, root = EngineConfig(), tmp_path_factory.mktemp("index")
    built = {}
    for m in (lite0, digits_model):
        index = open_index(m.spec.index, m.layers.feature_dim, root / m.spec.name, m.spec.name,
                           seed=gallery(store, m.spec.name))
        for kind, suffix in SUFFIXES.items():
            built[f"{m.spec.name}{suffix}"] = build_endpoint(kind, m, config, index)
    yield built
    for m in (lite0, digits_model):
        built[f"{m.spec.name}-neighbours"].index.close()
