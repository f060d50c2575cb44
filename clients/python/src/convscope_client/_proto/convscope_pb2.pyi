from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Output(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_UNSPECIFIED: _ClassVar[Output]
    OUTPUT_HEATMAP: _ClassVar[Output]
    OUTPUT_OVERLAY: _ClassVar[Output]
    OUTPUT_ARRAY: _ClassVar[Output]

class Polarity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POLARITY_UNSPECIFIED: _ClassVar[Polarity]
    POLARITY_POSITIVE: _ClassVar[Polarity]
    POLARITY_NEGATIVE: _ClassVar[Polarity]
    POLARITY_ABSOLUTE: _ClassVar[Polarity]

class SaliencyMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SALIENCY_METHOD_UNSPECIFIED: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_GRADIENT: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_SMOOTHGRAD: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_GUIDED_BACKPROP: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_INTEGRATED_GRADIENTS: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_INPUT_X_GRADIENT: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_OCCLUSION: _ClassVar[SaliencyMethod]
    SALIENCY_METHOD_LIME: _ClassVar[SaliencyMethod]

class Baseline(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BASELINE_UNSPECIFIED: _ClassVar[Baseline]
    BASELINE_BLACK: _ClassVar[Baseline]
    BASELINE_BLUR: _ClassVar[Baseline]
    BASELINE_UNIFORM: _ClassVar[Baseline]

class CamMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAM_METHOD_UNSPECIFIED: _ClassVar[CamMethod]
    CAM_METHOD_CAM: _ClassVar[CamMethod]
    CAM_METHOD_GRADCAM: _ClassVar[CamMethod]
    CAM_METHOD_GRADCAM_PP: _ClassVar[CamMethod]
    CAM_METHOD_SCORECAM: _ClassVar[CamMethod]
    CAM_METHOD_LAYERCAM: _ClassVar[CamMethod]

class ProjectionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROJECTION_METHOD_UNSPECIFIED: _ClassVar[ProjectionMethod]
    PROJECTION_METHOD_PCA: _ClassVar[ProjectionMethod]
    PROJECTION_METHOD_TSNE: _ClassVar[ProjectionMethod]
    PROJECTION_METHOD_UMAP: _ClassVar[ProjectionMethod]

class ProjectionSubset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROJECTION_SUBSET_UNSPECIFIED: _ClassVar[ProjectionSubset]
    PROJECTION_SUBSET_ALL: _ClassVar[ProjectionSubset]
    PROJECTION_SUBSET_LABELS: _ClassVar[ProjectionSubset]
    PROJECTION_SUBSET_NEIGHBOURS: _ClassVar[ProjectionSubset]

class InspectOutput(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSPECT_OUTPUT_UNSPECIFIED: _ClassVar[InspectOutput]
    INSPECT_OUTPUT_GRID: _ClassVar[InspectOutput]
    INSPECT_OUTPUT_ARRAY: _ClassVar[InspectOutput]
    INSPECT_OUTPUT_RAW: _ClassVar[InspectOutput]
OUTPUT_UNSPECIFIED: Output
OUTPUT_HEATMAP: Output
OUTPUT_OVERLAY: Output
OUTPUT_ARRAY: Output
POLARITY_UNSPECIFIED: Polarity
POLARITY_POSITIVE: Polarity
POLARITY_NEGATIVE: Polarity
POLARITY_ABSOLUTE: Polarity
SALIENCY_METHOD_UNSPECIFIED: SaliencyMethod
SALIENCY_METHOD_GRADIENT: SaliencyMethod
SALIENCY_METHOD_SMOOTHGRAD: SaliencyMethod
SALIENCY_METHOD_GUIDED_BACKPROP: SaliencyMethod
SALIENCY_METHOD_INTEGRATED_GRADIENTS: SaliencyMethod
SALIENCY_METHOD_INPUT_X_GRADIENT: SaliencyMethod
SALIENCY_METHOD_OCCLUSION: SaliencyMethod
SALIENCY_METHOD_LIME: SaliencyMethod
BASELINE_UNSPECIFIED: Baseline
BASELINE_BLACK: Baseline
BASELINE_BLUR: Baseline
BASELINE_UNIFORM: Baseline
CAM_METHOD_UNSPECIFIED: CamMethod
CAM_METHOD_CAM: CamMethod
CAM_METHOD_GRADCAM: CamMethod
CAM_METHOD_GRADCAM_PP: CamMethod
CAM_METHOD_SCORECAM: CamMethod
CAM_METHOD_LAYERCAM: CamMethod
PROJECTION_METHOD_UNSPECIFIED: ProjectionMethod
PROJECTION_METHOD_PCA: ProjectionMethod
PROJECTION_METHOD_TSNE: ProjectionMethod
PROJECTION_METHOD_UMAP: ProjectionMethod
PROJECTION_SUBSET_UNSPECIFIED: ProjectionSubset
PROJECTION_SUBSET_ALL: ProjectionSubset
PROJECTION_SUBSET_LABELS: ProjectionSubset
PROJECTION_SUBSET_NEIGHBOURS: ProjectionSubset
INSPECT_OUTPUT_UNSPECIFIED: InspectOutput
INSPECT_OUTPUT_GRID: InspectOutput
INSPECT_OUTPUT_ARRAY: InspectOutput
INSPECT_OUTPUT_RAW: InspectOutput

class Image(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExplanationMap(_message.Message):
    __slots__ = ("width", "height", "heatmap_png", "overlay_png", "array_f16")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HEATMAP_PNG_FIELD_NUMBER: _ClassVar[int]
    OVERLAY_PNG_FIELD_NUMBER: _ClassVar[int]
    ARRAY_F16_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    heatmap_png: bytes
    overlay_png: bytes
    array_f16: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., heatmap_png: _Optional[bytes] = ..., overlay_png: _Optional[bytes] = ..., array_f16: _Optional[bytes] = ...) -> None: ...

class Rendering(_message.Message):
    __slots__ = ("outputs", "polarity", "clip_low", "clip_high", "alpha")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    POLARITY_FIELD_NUMBER: _ClassVar[int]
    CLIP_LOW_FIELD_NUMBER: _ClassVar[int]
    CLIP_HIGH_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedScalarFieldContainer[Output]
    polarity: Polarity
    clip_low: float
    clip_high: float
    alpha: float
    def __init__(self, outputs: _Optional[_Iterable[_Union[Output, str]]] = ..., polarity: _Optional[_Union[Polarity, str]] = ..., clip_low: _Optional[float] = ..., clip_high: _Optional[float] = ..., alpha: _Optional[float] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("model", "image", "top_k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    top_k: int
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("class_index", "label", "score")
    CLASS_INDEX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    class_index: int
    label: str
    score: float
    def __init__(self, class_index: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("model", "predictions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, model: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class FeaturesRequest(_message.Message):
    __slots__ = ("model", "image", "normalize")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    normalize: bool
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., normalize: _Optional[bool] = ...) -> None: ...

class FeaturesResponse(_message.Message):
    __slots__ = ("model", "layer", "vector")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class SaliencyRequest(_message.Message):
    __slots__ = ("model", "image", "method", "target", "rendering", "samples", "noise", "seed", "steps", "baseline", "window", "stride", "fill", "num_features", "positive_only", "segments")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    RENDERING_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    NUM_FEATURES_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    method: SaliencyMethod
    target: int
    rendering: Rendering
    samples: int
    noise: float
    seed: int
    steps: int
    baseline: Baseline
    window: int
    stride: int
    fill: float
    num_features: int
    positive_only: bool
    segments: int
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., method: _Optional[_Union[SaliencyMethod, str]] = ..., target: _Optional[int] = ..., rendering: _Optional[_Union[Rendering, _Mapping]] = ..., samples: _Optional[int] = ..., noise: _Optional[float] = ..., seed: _Optional[int] = ..., steps: _Optional[int] = ..., baseline: _Optional[_Union[Baseline, str]] = ..., window: _Optional[int] = ..., stride: _Optional[int] = ..., fill: _Optional[float] = ..., num_features: _Optional[int] = ..., positive_only: _Optional[bool] = ..., segments: _Optional[int] = ...) -> None: ...

class CamRequest(_message.Message):
    __slots__ = ("model", "image", "method", "target", "rendering", "layer")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    RENDERING_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    method: CamMethod
    target: int
    rendering: Rendering
    layer: str
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., method: _Optional[_Union[CamMethod, str]] = ..., target: _Optional[int] = ..., rendering: _Optional[_Union[Rendering, _Mapping]] = ..., layer: _Optional[str] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("model", "method", "target", "label", "score", "map")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MAP_FIELD_NUMBER: _ClassVar[int]
    model: str
    method: str
    target: int
    label: str
    score: float
    map: ExplanationMap
    def __init__(self, model: _Optional[str] = ..., method: _Optional[str] = ..., target: _Optional[int] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., map: _Optional[_Union[ExplanationMap, _Mapping]] = ...) -> None: ...

class SaliencyResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: Explanation
    def __init__(self, explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class CamResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: Explanation
    def __init__(self, explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class Probe(_message.Message):
    __slots__ = ("image", "vector")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    image: Image
    vector: FeatureVector
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., vector: _Optional[_Union[FeatureVector, _Mapping]] = ...) -> None: ...

class FeatureVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class NeighboursRequest(_message.Message):
    __slots__ = ("model", "probe", "k")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    model: str
    probe: Probe
    k: int
    def __init__(self, model: _Optional[str] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., k: _Optional[int] = ...) -> None: ...

class Neighbour(_message.Message):
    __slots__ = ("id", "distance", "label", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    distance: float
    label: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., distance: _Optional[float] = ..., label: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class NeighboursResponse(_message.Message):
    __slots__ = ("model", "neighbours")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    model: str
    neighbours: _containers.RepeatedCompositeFieldContainer[Neighbour]
    def __init__(self, model: _Optional[str] = ..., neighbours: _Optional[_Iterable[_Union[Neighbour, _Mapping]]] = ...) -> None: ...

class IndexAddRequest(_message.Message):
    __slots__ = ("model", "probe", "id", "label", "metadata_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    probe: Probe
    id: str
    label: str
    metadata_json: str
    def __init__(self, model: _Optional[str] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., id: _Optional[str] = ..., label: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class IndexAddResponse(_message.Message):
    __slots__ = ("model", "id", "created", "count")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    model: str
    id: str
    created: bool
    count: int
    def __init__(self, model: _Optional[str] = ..., id: _Optional[str] = ..., created: _Optional[bool] = ..., count: _Optional[int] = ...) -> None: ...

class IndexDeleteRequest(_message.Message):
    __slots__ = ("model", "id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    id: str
    def __init__(self, model: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class IndexDeleteResponse(_message.Message):
    __slots__ = ("model", "id", "count")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    model: str
    id: str
    count: int
    def __init__(self, model: _Optional[str] = ..., id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class IndexStatsRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class IndexStatsResponse(_message.Message):
    __slots__ = ("model", "count", "dim", "metric", "index_type", "backend", "details_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    model: str
    count: int
    dim: int
    metric: str
    index_type: str
    backend: str
    details_json: str
    def __init__(self, model: _Optional[str] = ..., count: _Optional[int] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index_type: _Optional[str] = ..., backend: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class ProjectRequest(_message.Message):
    __slots__ = ("model", "method", "subset", "labels", "probe", "k", "seed", "plot")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SUBSET_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PLOT_FIELD_NUMBER: _ClassVar[int]
    model: str
    method: ProjectionMethod
    subset: ProjectionSubset
    labels: _containers.RepeatedScalarFieldContainer[str]
    probe: Probe
    k: int
    seed: int
    plot: bool
    def __init__(self, model: _Optional[str] = ..., method: _Optional[_Union[ProjectionMethod, str]] = ..., subset: _Optional[_Union[ProjectionSubset, str]] = ..., labels: _Optional[_Iterable[str]] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., k: _Optional[int] = ..., seed: _Optional[int] = ..., plot: _Optional[bool] = ...) -> None: ...

class ProjectedPoint(_message.Message):
    __slots__ = ("id", "label", "x", "y", "query")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    x: float
    y: float
    query: bool
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., query: _Optional[bool] = ...) -> None: ...

class ProjectResponse(_message.Message):
    __slots__ = ("model", "method", "subset", "seed", "points", "version", "cached", "plot_png")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SUBSET_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    PLOT_PNG_FIELD_NUMBER: _ClassVar[int]
    model: str
    method: str
    subset: str
    seed: int
    points: _containers.RepeatedCompositeFieldContainer[ProjectedPoint]
    version: int
    cached: bool
    plot_png: bytes
    def __init__(self, model: _Optional[str] = ..., method: _Optional[str] = ..., subset: _Optional[str] = ..., seed: _Optional[int] = ..., points: _Optional[_Iterable[_Union[ProjectedPoint, _Mapping]]] = ..., version: _Optional[int] = ..., cached: _Optional[bool] = ..., plot_png: _Optional[bytes] = ...) -> None: ...

class ReceptiveField(_message.Message):
    __slots__ = ("size_h", "size_w", "jump_h", "jump_w", "start_y", "start_x")
    SIZE_H_FIELD_NUMBER: _ClassVar[int]
    SIZE_W_FIELD_NUMBER: _ClassVar[int]
    JUMP_H_FIELD_NUMBER: _ClassVar[int]
    JUMP_W_FIELD_NUMBER: _ClassVar[int]
    START_Y_FIELD_NUMBER: _ClassVar[int]
    START_X_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_FIELD_NUMBER: _ClassVar[int]
    size_h: int
    size_w: int
    jump_h: int
    jump_w: int
    start_y: float
    start_x: float
    def __init__(self, size_h: _Optional[int] = ..., size_w: _Optional[int] = ..., jump_h: _Optional[int] = ..., jump_w: _Optional[int] = ..., start_y: _Optional[float] = ..., start_x: _Optional[float] = ..., **kwargs) -> None: ...

class LayerInfo(_message.Message):
    __slots__ = ("name", "type", "shape", "receptive_field", "stored")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    RECEPTIVE_FIELD_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    receptive_field: ReceptiveField
    stored: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., receptive_field: _Optional[_Union[ReceptiveField, _Mapping]] = ..., stored: _Optional[bool] = ...) -> None: ...

class InspectLayersRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class InspectLayersResponse(_message.Message):
    __slots__ = ("model", "input_channels", "input_height", "input_width", "cam_layer", "feature_layer", "first_conv", "stored_layers", "layers", "note")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CAM_LAYER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_LAYER_FIELD_NUMBER: _ClassVar[int]
    FIRST_CONV_FIELD_NUMBER: _ClassVar[int]
    STORED_LAYERS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    model: str
    input_channels: int
    input_height: int
    input_width: int
    cam_layer: str
    feature_layer: str
    first_conv: str
    stored_layers: _containers.RepeatedScalarFieldContainer[str]
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    note: str
    def __init__(self, model: _Optional[str] = ..., input_channels: _Optional[int] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., cam_layer: _Optional[str] = ..., feature_layer: _Optional[str] = ..., first_conv: _Optional[str] = ..., stored_layers: _Optional[_Iterable[str]] = ..., layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class Float16Array(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class FeatureMapsRequest(_message.Message):
    __slots__ = ("model", "image", "layer", "channels", "top", "outputs")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    image: Image
    layer: str
    channels: _containers.RepeatedScalarFieldContainer[int]
    top: int
    outputs: _containers.RepeatedScalarFieldContainer[InspectOutput]
    def __init__(self, model: _Optional[str] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., layer: _Optional[str] = ..., channels: _Optional[_Iterable[int]] = ..., top: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[InspectOutput, str]]] = ...) -> None: ...

class ChannelStats(_message.Message):
    __slots__ = ("channel", "mean", "max", "argmax_y", "argmax_x")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    ARGMAX_Y_FIELD_NUMBER: _ClassVar[int]
    ARGMAX_X_FIELD_NUMBER: _ClassVar[int]
    channel: int
    mean: float
    max: float
    argmax_y: int
    argmax_x: int
    def __init__(self, channel: _Optional[int] = ..., mean: _Optional[float] = ..., max: _Optional[float] = ..., argmax_y: _Optional[int] = ..., argmax_x: _Optional[int] = ...) -> None: ...

class FeatureMapsResponse(_message.Message):
    __slots__ = ("model", "layer", "shape", "width", "height", "channels", "grid_png", "array", "raw")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    GRID_PNG_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    width: int
    height: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelStats]
    grid_png: bytes
    array: Float16Array
    raw: Float16Array
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelStats, _Mapping]]] = ..., grid_png: _Optional[bytes] = ..., array: _Optional[_Union[Float16Array, _Mapping]] = ..., raw: _Optional[_Union[Float16Array, _Mapping]] = ...) -> None: ...

class FiltersRequest(_message.Message):
    __slots__ = ("model", "layer", "outputs")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    outputs: _containers.RepeatedScalarFieldContainer[InspectOutput]
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[InspectOutput, str]]] = ...) -> None: ...

class FiltersResponse(_message.Message):
    __slots__ = ("model", "layer", "shape", "mode", "shown", "grid_png", "array")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SHOWN_FIELD_NUMBER: _ClassVar[int]
    GRID_PNG_FIELD_NUMBER: _ClassVar[int]
    ARRAY_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    mode: str
    shown: int
    grid_png: bytes
    array: Float16Array
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., mode: _Optional[str] = ..., shown: _Optional[int] = ..., grid_png: _Optional[bytes] = ..., array: _Optional[_Union[Float16Array, _Mapping]] = ...) -> None: ...

class TopExamplesRequest(_message.Message):
    __slots__ = ("model", "layer", "channel", "k", "patches")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PATCHES_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    channel: int
    k: int
    patches: bool
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., channel: _Optional[int] = ..., k: _Optional[int] = ..., patches: _Optional[bool] = ...) -> None: ...

class TopExample(_message.Message):
    __slots__ = ("id", "label", "metadata_json", "activation", "position_y", "position_x", "box_x0", "box_y0", "box_x1", "box_y1", "width", "height", "patch_png")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    POSITION_Y_FIELD_NUMBER: _ClassVar[int]
    POSITION_X_FIELD_NUMBER: _ClassVar[int]
    BOX_X0_FIELD_NUMBER: _ClassVar[int]
    BOX_Y0_FIELD_NUMBER: _ClassVar[int]
    BOX_X1_FIELD_NUMBER: _ClassVar[int]
    BOX_Y1_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PATCH_PNG_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    metadata_json: str
    activation: float
    position_y: int
    position_x: int
    box_x0: int
    box_y0: int
    box_x1: int
    box_y1: int
    width: int
    height: int
    patch_png: bytes
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., metadata_json: _Optional[str] = ..., activation: _Optional[float] = ..., position_y: _Optional[int] = ..., position_x: _Optional[int] = ..., box_x0: _Optional[int] = ..., box_y0: _Optional[int] = ..., box_x1: _Optional[int] = ..., box_y1: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., patch_png: _Optional[bytes] = ...) -> None: ...

class TopExamplesResponse(_message.Message):
    __slots__ = ("model", "layer", "channel", "count", "examples")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    model: str
    layer: str
    channel: int
    count: int
    examples: _containers.RepeatedCompositeFieldContainer[TopExample]
    def __init__(self, model: _Optional[str] = ..., layer: _Optional[str] = ..., channel: _Optional[int] = ..., count: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[TopExample, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class ModelMetadataRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ModelMetadataResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: ModelInfo
    def __init__(self, info: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model", "description", "num_classes", "feature_dim", "endpoints", "input_height", "input_width", "layers", "cam_layer", "feature_layer", "first_conv", "stored_layers", "input_channels")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_DIM_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INPUT_WIDTH_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    CAM_LAYER_FIELD_NUMBER: _ClassVar[int]
    FEATURE_LAYER_FIELD_NUMBER: _ClassVar[int]
    FIRST_CONV_FIELD_NUMBER: _ClassVar[int]
    STORED_LAYERS_FIELD_NUMBER: _ClassVar[int]
    INPUT_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    model: str
    description: str
    num_classes: int
    feature_dim: int
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    input_height: int
    input_width: int
    layers: _containers.RepeatedCompositeFieldContainer[LayerInfo]
    cam_layer: str
    feature_layer: str
    first_conv: str
    stored_layers: _containers.RepeatedScalarFieldContainer[str]
    input_channels: int
    def __init__(self, model: _Optional[str] = ..., description: _Optional[str] = ..., num_classes: _Optional[int] = ..., feature_dim: _Optional[int] = ..., endpoints: _Optional[_Iterable[str]] = ..., input_height: _Optional[int] = ..., input_width: _Optional[int] = ..., layers: _Optional[_Iterable[_Union[LayerInfo, _Mapping]]] = ..., cam_layer: _Optional[str] = ..., feature_layer: _Optional[str] = ..., first_conv: _Optional[str] = ..., stored_layers: _Optional[_Iterable[str]] = ..., input_channels: _Optional[int] = ...) -> None: ...

class PipelineRequest(_message.Message):
    __slots__ = ("key", "classify", "features", "saliency", "cam", "neighbours", "inspect_layers", "feature_maps", "filters", "top_examples")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_FIELD_NUMBER: _ClassVar[int]
    CAM_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    INSPECT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MAPS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    TOP_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    key: str
    classify: ClassifyRequest
    features: FeaturesRequest
    saliency: SaliencyRequest
    cam: CamRequest
    neighbours: NeighboursRequest
    inspect_layers: InspectLayersRequest
    feature_maps: FeatureMapsRequest
    filters: FiltersRequest
    top_examples: TopExamplesRequest
    def __init__(self, key: _Optional[str] = ..., classify: _Optional[_Union[ClassifyRequest, _Mapping]] = ..., features: _Optional[_Union[FeaturesRequest, _Mapping]] = ..., saliency: _Optional[_Union[SaliencyRequest, _Mapping]] = ..., cam: _Optional[_Union[CamRequest, _Mapping]] = ..., neighbours: _Optional[_Union[NeighboursRequest, _Mapping]] = ..., inspect_layers: _Optional[_Union[InspectLayersRequest, _Mapping]] = ..., feature_maps: _Optional[_Union[FeatureMapsRequest, _Mapping]] = ..., filters: _Optional[_Union[FiltersRequest, _Mapping]] = ..., top_examples: _Optional[_Union[TopExamplesRequest, _Mapping]] = ...) -> None: ...

class PipelineError(_message.Message):
    __slots__ = ("code", "type", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    type: str
    message: str
    def __init__(self, code: _Optional[int] = ..., type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PipelineResponse(_message.Message):
    __slots__ = ("key", "classify", "features", "saliency", "cam", "neighbours", "error", "inspect_layers", "feature_maps", "filters", "top_examples")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    SALIENCY_FIELD_NUMBER: _ClassVar[int]
    CAM_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INSPECT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_MAPS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    TOP_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    key: str
    classify: ClassifyResponse
    features: FeaturesResponse
    saliency: SaliencyResponse
    cam: CamResponse
    neighbours: NeighboursResponse
    error: PipelineError
    inspect_layers: InspectLayersResponse
    feature_maps: FeatureMapsResponse
    filters: FiltersResponse
    top_examples: TopExamplesResponse
    def __init__(self, key: _Optional[str] = ..., classify: _Optional[_Union[ClassifyResponse, _Mapping]] = ..., features: _Optional[_Union[FeaturesResponse, _Mapping]] = ..., saliency: _Optional[_Union[SaliencyResponse, _Mapping]] = ..., cam: _Optional[_Union[CamResponse, _Mapping]] = ..., neighbours: _Optional[_Union[NeighboursResponse, _Mapping]] = ..., error: _Optional[_Union[PipelineError, _Mapping]] = ..., inspect_layers: _Optional[_Union[InspectLayersResponse, _Mapping]] = ..., feature_maps: _Optional[_Union[FeatureMapsResponse, _Mapping]] = ..., filters: _Optional[_Union[FiltersResponse, _Mapping]] = ..., top_examples: _Optional[_Union[TopExamplesResponse, _Mapping]] = ...) -> None: ...
