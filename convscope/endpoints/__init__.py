"""Endpoints by name, and the TorchServe registration name of each (``<model><suffix>``)."""

from __future__ import annotations

from ..config import EngineConfig
from ..errors import InternalError
from ..models import LoadedModel
from .base import Endpoint, Prepared
from .classify import ClassifyEndpoint, FeaturesEndpoint
from .explain import CamEndpoint, SaliencyEndpoint

ENDPOINTS: dict[str, type[Endpoint]] = {cls.name: cls for cls in (
    ClassifyEndpoint, FeaturesEndpoint, SaliencyEndpoint, CamEndpoint)}
SUFFIXES = {"classify": "", "features": "-features", "saliency": "-saliency", "cam": "-cam"}


def endpoint_for(registered_name: str, model_name: str) -> str:
    """Which endpoint a TorchServe registration name serves (``digits-features`` -> features)."""
    for endpoint, suffix in SUFFIXES.items():
        if registered_name == f"{model_name}{suffix}":
            return endpoint
    raise InternalError(f"registration name {registered_name!r} matches no endpoint of {model_name!r}")


def build_endpoint(endpoint: str, model: LoadedModel, config: EngineConfig) -> Endpoint:
    return ENDPOINTS[endpoint](model, config)


__all__ = ["ENDPOINTS", "SUFFIXES", "ClassifyEndpoint", "Endpoint", "FeaturesEndpoint", "Prepared",
           "CamEndpoint", "SaliencyEndpoint", "build_endpoint", "endpoint_for"]
