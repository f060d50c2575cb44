"""The transport-neutral core: every call is built once, as its ``convscope.v1`` request message
(the typed contract), paired with the ``Operation`` that says where it goes and how its answer
becomes a result. The gRPC transport sends the message as it is; the REST transport renders the
same message as form fields (``_rest.py``), so both carry the same values by construction.

Only what the caller set is put in the message (unset ``optional`` fields, UNSPECIFIED enums and
empty strings are absent), and so only that is sent: the server rejects parameters that do not
apply to a method.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from google.protobuf.message import Message

from . import _convert as cv
from ._proto import convscope_pb2 as pb
from .errors import InvalidArgument
from .results import (
    Classification,
    Explanation,
    FeatureMaps,
    Features,
    Filters,
    IndexStats,
    IndexWrite,
    LayerList,
    ModelInfo,
    Neighbours,
    Projection,
    TopExamples,
)

T = TypeVar("T")
M = TypeVar("M", bound=Message)
ImageInput = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
"""Encoded image bytes, a path to an image file, or a binary file object."""
Outputs = str | Sequence[str]
"""``heatmap``, ``overlay``, ``array`` (inspect: ``grid``, ``array``, ``raw``): a sequence or a
comma-separated string."""
Channels = str | Iterable[int]
"""Channel indices (``[3, 17, 40]``, ``"3,17,40"`` or ``"[3, 17, 40]"``), or ``"top"``."""


@dataclass(frozen=True)
class Operation(Generic[T]):
    """Where a call goes and how its answer is read."""

    rpc: str
    """Method of the ``convscope.v1.ConvScope`` service."""
    endpoint: str | None
    """Suffix of the REST model name (``""``, ``-features`` ...); None: gRPC only."""
    op: str | None
    """The ``op`` parameter of the neighbours and inspect endpoints (None: not sent)."""
    from_json: Callable[[dict[str, Any]], T] | None
    from_proto: Callable[[Any], T]


@dataclass(frozen=True)
class Call(Generic[T]):
    operation: Operation[T]
    message: Message
    """The convscope.v1 request."""


CLASSIFY = Operation("Classify", "", None, cv.classification_from_json, cv.classification_from_proto)
FEATURES = Operation("Features", "-features", None, cv.features_from_json, cv.features_from_proto)
SALIENCY = Operation("Saliency", "-saliency", None, cv.explanation_from_json, cv.explanation_from_proto)
CAM = Operation("Cam", "-cam", None, cv.explanation_from_json, cv.explanation_from_proto)
NEIGHBOURS = Operation("Neighbours", "-neighbours", None, cv.neighbours_from_json, cv.neighbours_from_proto)
INDEX_ADD = Operation("IndexAdd", "-neighbours", "add", cv.index_write_from_json, cv.index_add_from_proto)
INDEX_DELETE = Operation("IndexDelete", "-neighbours", "delete", cv.index_write_from_json,
                         cv.index_delete_from_proto)
INDEX_STATS = Operation("IndexStats", "-neighbours", "stats", cv.index_stats_from_json, cv.index_stats_from_proto)
PROJECT = Operation("Project", "-neighbours", "project", cv.projection_from_json, cv.projection_from_proto)
INSPECT_LAYERS = Operation("InspectLayers", "-inspect", "layers", cv.layer_list_from_json, cv.layer_list_from_proto)
FEATURE_MAPS = Operation("FeatureMaps", "-inspect", "feature_maps", cv.feature_maps_from_json,
                         cv.feature_maps_from_proto)
FILTERS = Operation("Filters", "-inspect", "filters", cv.filters_from_json, cv.filters_from_proto)
TOP_EXAMPLES = Operation("TopExamples", "-inspect", "top_examples", cv.top_examples_from_json,
                         cv.top_examples_from_proto)
LIST_MODELS: Operation[list[ModelInfo]] = Operation("ListModels", None, None, None, cv.model_list_from_proto)
MODEL_METADATA = Operation("ModelMetadata", None, None, None, cv.model_metadata_from_proto)


def classify(model: str, image: ImageInput, top_k: int | None = None) -> Call[Classification]:
    """The ``top_k`` (server default 5) most probable classes of ``image``, highest first."""
    return _call(CLASSIFY, pb.ClassifyRequest, model=model, image=_image(image), top_k=top_k)


def features(model: str, image: ImageInput, normalize: bool | None = None) -> Call[Features]:
    """The model's feature vector (penultimate embedding) of ``image``: float32 [dim], unit L2
    norm unless ``normalize=False``."""
    return _call(FEATURES, pb.FeaturesRequest, model=model, image=_image(image), normalize=normalize)


def saliency(model: str, image: ImageInput, method: str = "gradient", target: int | None = None,
             outputs: Outputs = ("heatmap",), polarity: str | None = None,
             clip_low: float | None = None, clip_high: float | None = None, alpha: float | None = None,
             samples: int | None = None, noise: float | None = None, seed: int | None = None,
             steps: int | None = None, baseline: str | None = None, window: int | None = None,
             stride: int | None = None, fill: float | None = None, num_features: int | None = None,
             positive_only: bool | None = None, segments: int | None = None) -> Call[Explanation]:
    """A saliency map of ``target`` (default: the image's top-1 class). ``method``: gradient,
    smoothgrad, guided_backprop, integrated_gradients, input_x_gradient, occlusion or lime; the
    knobs that apply to each are in docs/api.md (the server rejects the others)."""
    return _call(SALIENCY, pb.SaliencyRequest, model=model, image=_image(image),
                 method=_enum(pb.SaliencyMethod, method), target=target,
                 rendering=_rendering(outputs, polarity, clip_low, clip_high, alpha),
                 samples=samples, noise=noise, seed=seed, steps=steps,
                 baseline=_enum(pb.Baseline, baseline), window=window, stride=stride, fill=fill,
                 num_features=num_features, positive_only=positive_only, segments=segments)


def cam(model: str, image: ImageInput, method: str = "gradcam", target: int | None = None,
        layer: str | None = None, outputs: Outputs = ("heatmap",), polarity: str | None = None,
        clip_low: float | None = None, clip_high: float | None = None,
        alpha: float | None = None) -> Call[Explanation]:
    """A class activation map of ``target``. ``method``: cam, gradcam, gradcam_pp, scorecam or
    layercam; ``layer``: a module name (default: the last conv block)."""
    return _call(CAM, pb.CamRequest, model=model, image=_image(image), method=_enum(pb.CamMethod, method),
                 target=target, layer=layer,
                 rendering=_rendering(outputs, polarity, clip_low, clip_high, alpha))


def neighbours(model: str, image: ImageInput | None = None, vector: Iterable[float] | None = None,
               k: int | None = None) -> Call[Neighbours]:
    """The ``k`` (default 10) stored entries nearest to ``image`` or to a feature ``vector``
    (exactly one of them), nearest first."""
    return _call(NEIGHBOURS, pb.NeighboursRequest, model=model, probe=_probe(image, vector), k=k)


def index_add(model: str, id: str, image: ImageInput | None = None,
              vector: Iterable[float] | None = None, label: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> Call[IndexWrite]:
    """Upsert entry ``id`` (from ``image`` or ``vector``) into the model's feature index;
    answered once durable."""
    return _call(INDEX_ADD, pb.IndexAddRequest, model=model, probe=_probe(image, vector), id=id,
                 label=label, metadata_json=None if metadata is None else json.dumps(dict(metadata)))


def index_delete(model: str, id: str) -> Call[IndexWrite]:
    """Remove entry ``id``; ``NotFound`` if the index does not hold it."""
    return _call(INDEX_DELETE, pb.IndexDeleteRequest, model=model, id=id)


def index_stats(model: str) -> Call[IndexStats]:
    """Size, dim, metric and backend of the model's feature index."""
    return _call(INDEX_STATS, pb.IndexStatsRequest, model=model)


def project(model: str, method: str | None = None, subset: str | None = None,
            labels: Iterable[str] | None = None, image: ImageInput | None = None,
            vector: Iterable[float] | None = None, k: int | None = None, seed: int | None = None,
            plot: bool | None = None) -> Call[Projection]:
    """2-D coordinates (``method``: pca, tsne or umap; server default pca) of the gallery
    (``subset="all"``, the default), of the entries with one of ``labels`` (``subset="labels"``),
    or of the ``k`` nearest entries of ``image`` / ``vector`` plus it (``subset="neighbours"``);
    ``plot=True`` adds a scatter PNG coloured by label."""
    probe = _probe(image, vector) if image is not None or vector is not None else None
    return _call(PROJECT, pb.ProjectRequest, model=model,
                 method=_enum(pb.ProjectionMethod, method), subset=_enum(pb.ProjectionSubset, subset),
                 labels=list(labels) if labels is not None else None, probe=probe, k=k, seed=seed,
                 plot=plot or None)


def inspect_layers(model: str) -> Call[LayerList]:
    """Every inspectable layer of ``model`` (output shape, receptive field in input pixels,
    whether the top-activation store holds it), in the order the forward pass finishes them."""
    return _call(INSPECT_LAYERS, pb.InspectLayersRequest, model=model)


def feature_maps(model: str, image: ImageInput, layer: str | None = None, channels: Channels | None = None,
                 top: int | None = None, outputs: Outputs | None = None) -> Call[FeatureMaps]:
    """The activations of ``layer`` (default: the CAM layer) for ``image``: the ``top``
    (server default 16) channels by mean activation, or ``channels`` in that order; ``outputs``:
    ``grid`` (the default), ``array`` (aligned with the image), ``raw`` (the layer's resolution)."""
    return _call(FEATURE_MAPS, pb.FeatureMapsRequest, model=model, image=_image(image), layer=layer,
                 channels=_channels(channels), top=top, outputs=_enums(pb.InspectOutput, outputs))


def filters(model: str, layer: str | None = None, outputs: Outputs | None = None) -> Call[Filters]:
    """The weights of convolution ``layer`` (default: the first one) as a grid PNG (``grid``,
    the default) and/or float16 values (``array``)."""
    return _call(FILTERS, pb.FiltersRequest, model=model, layer=layer, outputs=_enums(pb.InspectOutput, outputs))


def top_examples(model: str, channel: int, layer: str | None = None, k: int | None = None,
                 patches: bool | None = None) -> Call[TopExamples]:
    """The ``k`` (server default 9) gallery images that most excite ``channel`` of stored
    ``layer`` (default: the first stored layer), best first; ``patches=True`` adds each
    example's receptive-field box cut from the image, as PNG."""
    return _call(TOP_EXAMPLES, pb.TopExamplesRequest, model=model, channel=channel, layer=layer, k=k,
                 patches=patches)


def list_models() -> Call[list[ModelInfo]]:
    """Every model the server holds (gRPC only)."""
    return _call(LIST_MODELS, pb.ListModelsRequest)


def model_metadata(model: str) -> Call[ModelInfo]:
    """Classes, feature dim, input size and endpoints of ``model`` (gRPC only)."""
    return _call(MODEL_METADATA, pb.ModelMetadataRequest, model=model)


def _call(operation: Operation[T], message: type[Message], **fields: Any) -> Call[T]:
    return Call(operation, _message(message, **fields))


def _message(message: type[M], **fields: Any) -> M:
    """``message`` with the fields that are not None; a value the proto cannot hold (a
    negative count, a string for a number) is ``InvalidArgument`` before anything is sent."""
    try:
        return message(**{k: v for k, v in fields.items() if v is not None})
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(400, "BadRequest", f"{message.__name__}: {exc}") from None


def _image(image: ImageInput) -> pb.Image:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return pb.Image(data=bytes(image))
    if isinstance(image, (str, os.PathLike)):
        return pb.Image(data=Path(image).read_bytes())
    if hasattr(image, "read"):
        return pb.Image(data=image.read())
    raise InvalidArgument(400, "BadRequest",
                          f"image must be bytes, a path or a binary file, not {type(image).__name__}")


def _probe(image: ImageInput | None, vector: Iterable[float] | None) -> Message:
    if (image is None) == (vector is None):
        raise InvalidArgument(400, "BadRequest", "give an image or a vector (exactly one)")
    if image is not None:
        return pb.Probe(image=_image(image))
    return pb.Probe(vector=_message(pb.FeatureVector, values=vector))


def enum_prefix(enum_name: str) -> str:
    """``SaliencyMethod`` -> ``SALIENCY_METHOD_``: how the proto names an enum's values."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum_name).upper() + "_"


def _enum(enum: Any, name: str | None) -> int | None:
    """``"gradcam_pp"`` -> ``CAM_METHOD_GRADCAM_PP``; None stays None (the server's default)."""
    if name is None:
        return None
    try:
        return int(enum.Value(enum_prefix(enum.DESCRIPTOR.name) + str(name).strip().upper()))
    except ValueError:
        raise InvalidArgument(400, "BadRequest", f"{name!r} is not one of {', '.join(choices(enum))}") from None


def choices(enum: Any) -> list[str]:
    """The names a string may give for a value of ``enum``: ``pb.CamMethod`` -> cam, gradcam ..."""
    prefix = enum_prefix(enum.DESCRIPTOR.name)
    return [n.removeprefix(prefix).lower() for n in enum.keys()  # noqa: SIM118 - not a dict
            if not n.endswith("_UNSPECIFIED")]


def _enums(enum: Any, names: Outputs | None) -> list[int]:
    """A comma list or a sequence of names -> enum values (empty: the server's default)."""
    listed = names.split(",") if isinstance(names, str) else list(names or ())
    return [v for v in (_enum(enum, n) for n in listed if n.strip()) if v is not None]


def _channels(channels: Channels | None) -> list[int] | None:
    """``"top"`` and None -> None (the server's default, the top channels); a list of indices,
    as integers or as text (``"3,17,40"``, ``"[3, 17, 40]"``) -> the list."""
    if isinstance(channels, str):
        text = channels.strip()
        if text == "top":
            return None
        listed = text.removeprefix("[").removesuffix("]").split(",")
        try:
            return [int(c) for c in listed if c.strip()]
        except ValueError:
            raise InvalidArgument(400, "BadRequest", f"channels must be 'top' or a list of integers, "
                                  f"not {text!r}") from None
    try:
        return None if channels is None else [operator.index(c) for c in channels]
    except TypeError:
        raise InvalidArgument(400, "BadRequest", f"channels must be integers, not {channels!r}") from None


def _rendering(outputs: Outputs | None, polarity: str | None, clip_low: float | None,
               clip_high: float | None, alpha: float | None) -> Message | None:
    fields = {"outputs": _enums(pb.Output, outputs),
              "polarity": _enum(pb.Polarity, polarity), "clip_low": clip_low,
              "clip_high": clip_high, "alpha": alpha}
    return _message(pb.Rendering, **fields) if any(v not in (None, []) for v in fields.values()) else None
