"""ConvScope client: classification, features, saliency, CAM, nearest neighbours and inspection
(layers, feature maps, filters, top examples) of image CNNs served by ConvScope, over REST
(TorchServe) or the typed convscope.v1 gRPC API, blocking or asyncio, with typed results and one
error hierarchy. Installs without torch."""

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
    ChannelStats,
    Classification,
    Explanation,
    FeatureMaps,
    Features,
    Filters,
    IndexStats,
    IndexWrite,
    LayerInfo,
    LayerList,
    ModelInfo,
    Neighbour,
    Neighbours,
    Prediction,
    ReceptiveField,
    TopExample,
    TopExamples,
)

__all__ = [
    "AsyncClient",
    "ChannelStats",
    "Classification",
    "Client",
    "ConvScopeError",
    "DeadlineExceeded",
    "Explanation",
    "FeatureMaps",
    "Features",
    "Filters",
    "IndexStats",
    "IndexWrite",
    "InternalError",
    "InvalidArgument",
    "LayerInfo",
    "LayerList",
    "ModelInfo",
    "Neighbour",
    "Neighbours",
    "NotFound",
    "Prediction",
    "ReceptiveField",
    "ResourceExhausted",
    "TopExample",
    "TopExamples",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "resolve_token",
]
