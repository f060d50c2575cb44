"""Shared fixtures: the built model store and the built-in models loaded in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.config import EngineConfig
from convscope.endpoints import SUFFIXES, build_endpoint
from convscope.index import open_index
from convscope.index.activations import STORE_FILE
from convscope.inspect.examples import open_model_store
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


def activation_seed(store: Path, name: str) -> Path:
    """The top-activation store `make store` built with that gallery."""
    return store / "build" / "galleries" / f"{name}-activations.sqlite"


@pytest.fixture(scope="session")
def endpoints(lite0, digits_model, store, tmp_path_factory):
    """In-process endpoints, keyed like TorchServe names: ``digits``, ``digits-features`` ...;
    the ``-neighbours`` ones over a private copy of the built gallery."""
    config, root = EngineConfig(), tmp_path_factory.mktemp("index")
    built = {}
    for m in (lite0, digits_model):
        directory = root / m.spec.name
        index = open_index(m.spec.index, m.layers.feature_dim, directory, m.spec.name,
                           seed=gallery(store, m.spec.name))
        activations = open_model_store(m, directory, index, seed=activation_seed(store, m.spec.name))
        for kind, suffix in SUFFIXES.items():
            built[f"{m.spec.name}{suffix}"] = build_endpoint(kind, m, config, index, activations,
                                                             directory / STORE_FILE)
    yield built
    for m in (lite0, digits_model):
        built[f"{m.spec.name}-neighbours"].index.close()
        if built[f"{m.spec.name}-neighbours"].store is not None:
            built[f"{m.spec.name}-neighbours"].store.close()
