"""ConvScope client: classification, features, saliency, CAM and nearest neighbours of image
CNNs served by ConvScope, over REST (TorchServe) or the typed convscope.v1 gRPC API, blocking or
asyncio, with typed results and one error hierarchy. Installs without torch."""

from .client import AsyncClient, Client, resolve_token
from .errors import (
    ConvScopeError,
    DeadlineExceeded,
    InternalError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .results import (
    Classification,
    Explanation,
    Features,
    IndexStats,
    IndexWrite,
    ModelInfo,
    Neighbour,
    Neighbours,
    Prediction,
)

__all__ = [
    "AsyncClient",
    "Classification",
    "Client",
    "ConvScopeError",
    "DeadlineExceeded",
    "Explanation",
    "Features",
    "IndexStats",
    "IndexWrite",
    "InternalError",
    "InvalidArgument",
    "ModelInfo",
    "Neighbour",
    "Neighbours",
    "NotFound",
    "Prediction",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "resolve_token",
]
