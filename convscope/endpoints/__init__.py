"""Endpoints by name, and the TorchServe registration name of each (``<model><suffix>``)."""

from __future__ import annotations

from pathlib import Path

from ..config import EngineConfig
from ..errors import InternalError
from ..index import FeatureIndex
from ..index.activations import ActivationStore
from ..models import LoadedModel
from .base import Endpoint, Prepared
from .classify import ClassifyEndpoint, FeaturesEndpoint
from .explain import CamEndpoint, ExplainEndpoint, SaliencyEndpoint
from .inspect import InspectEndpoint
from .neighbours import NeighboursEndpoint

ENDPOINTS: dict[str, type[Endpoint]] = {cls.name: cls for cls in (
    ClassifyEndpoint, FeaturesEndpoint, SaliencyEndpoint, CamEndpoint, NeighboursEndpoint, InspectEndpoint)}
SUFFIXES = {"classify": "", "features": "-features", "saliency": "-saliency", "cam": "-cam",
            "neighbours": "-neighbours", "inspect": "-inspect"}
EXPLANATION_ENDPOINTS = tuple(name for name, cls in ENDPOINTS.items() if issubclass(cls, ExplainEndpoint))
"""Many forward passes per image: their workers run at a lower CPU priority."""


def endpoint_for(registered_name: str, model_name: str) -> str:
    """Which endpoint a TorchServe registration name serves (``digits-features`` -> features)."""
    for endpoint, suffix in SUFFIXES.items():
        if registered_name == f"{model_name}{suffix}":
            return endpoint
    raise InternalError(f"registration name {registered_name!r} matches no endpoint of {model_name!r}")


def build_endpoint(endpoint: str, model: LoadedModel, config: EngineConfig,
                   index: FeatureIndex | None = None, store: ActivationStore | None = None,
                   store_path: Path | None = None) -> Endpoint:
    """The endpoint object; ``neighbours`` needs the model's open ``index`` (and writes the
    top-activation ``store`` with it, when there is one); ``inspect`` reads the store at
    ``store_path``."""
    if endpoint == "neighbours":
        if index is None:
            raise InternalError("the neighbours endpoint needs an open feature index")
        return NeighboursEndpoint(model, config, index, store)
    if endpoint == "inspect":
        return InspectEndpoint(model, config, store_path)
    return ENDPOINTS[endpoint](model, config)


__all__ = ["ENDPOINTS", "EXPLANATION_ENDPOINTS", "SUFFIXES", "ClassifyEndpoint", "Endpoint", "FeaturesEndpoint", "Prepared",
           "CamEndpoint", "InspectEndpoint", "NeighboursEndpoint", "SaliencyEndpoint", "build_endpoint", "endpoint_for"]
