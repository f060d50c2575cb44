"""Model specs: the small TOML file that describes one backbone.

A spec names the architecture, where the weights and labels are, how an image becomes the
network's input, which layers answer the feature and CAM questions, and how each endpoint is
served. Unknown keys are errors, so a typo never silently falls back to a default.

Example (``model_store/digits.toml``)::

    name = "digits"
    arch = "convscope:digits_cnn"       # or "timm:<name>", "torchvision:<name>"
    num_classes = 10
    weights = "build/digits.safetensors"  # .safetensors, or a state dict (.pt/.pth) read weights_only
    labels = ["0", "1", ...]              # or a path to a JSON list of names
    endpoints = ["classify", "features", "saliency", "cam"]   # the default: all
    runtime = "torch"                     # torch | onnx (ONNX Runtime for forward passes)

    [input]
    size = [28, 28]        # H, W of the network input
    channels = 1           # 1: grey, 3: RGB
    resize = "mnist"       # squash | center_crop | mnist
    invert = "auto"        # never | auto (light background -> invert, for dark-on-white digits)
    mean = [0.1307]
    std = [0.3081]

    [layers]
    feature = "auto"       # auto | "<module>" (its output) | "<module>:input"
    cam = "auto"           # auto | "<module>"

    [serving.classify]     # one table per endpoint, all keys optional
    batch_size = 8
    max_batch_delay_ms = 1

    [index]                # the feature index behind <m>-neighbours (IndexSpec)
    backend = "faiss"
    type = "flat"
    metric = "cosine"
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import SpecError

ENDPOINTS = ("classify", "features", "saliency", "cam", "neighbours", "inspect")
"""Endpoints a spec may list, in the order of their TorchServe names (``<m>``, ``<m>-features``)."""

RESIZE_MODES = ("squash", "center_crop", "mnist")
INVERT_MODES = ("never", "auto")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
RUNTIMES = ("torch", "onnx")
"""torch: PyTorch runs everything; onnx: forward passes run on ONNX Runtime (docs/onnx.md)."""


@dataclass(frozen=True)
class InputSpec:
    """How a decoded RGB image becomes one network input tensor float32 [channels, H, W]."""

    size: tuple[int, int]
    channels: int = 3
    resize: str = "squash"
    invert: str = "never"
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    alpha_background: tuple[int, int, int] = (255, 255, 255)


@dataclass(frozen=True)
class LayerSpec:
    """Layer names, or "auto" to discover them (see ``convscope.models.layers``)."""

    feature: str = "auto"
    cam: str = "auto"


@dataclass(frozen=True)
class InspectSpec:
    """What ``<m>-inspect`` keeps for ``op=top_examples`` (``[inspect]``; docs/inspect.md)."""

    layers: tuple[str, ...] | str = "auto"
    """Layers whose per-channel maxima the top-activation store keeps for every gallery image
    (4 bytes per channel per image: a float16 maximum and its position). "auto": the CAM layer and the outermost layer at twice its
    resolution; a list of layer names; an empty list stores none (``top_examples`` is then off)."""
    image_side: int = 512
    """A copy of each gallery image, its longer side at most this, is kept for patch PNGs; 0: none."""


@dataclass(frozen=True)
class ServingSpec:
    """TorchServe settings of one endpoint's registration."""

    batch_size: int = 8
    max_batch_delay_ms: int = 1
    """TorchServe waits up to this long for batch-mates, so a caller alone pays it on every request;
    under load batches fill while the worker is busy. 1 ms: measured best (benchmarks/batch_tuning.py;
    0 makes TorchServe wait about 100 ms)."""
    workers: int = 1
    response_timeout_s: int = 60


DEFAULT_SERVING = {
    # Explanations run many passes per image (Score-CAM one per channel): smaller batches and
    # response timeouts long enough for a CPU worker.
    "saliency": ServingSpec(batch_size=4, max_batch_delay_ms=10, response_timeout_s=300),
    "cam": ServingSpec(batch_size=4, max_batch_delay_ms=10, response_timeout_s=600),
    # One worker: the index has exactly one writer (see convscope.index).
    "neighbours": ServingSpec(batch_size=8, max_batch_delay_ms=1, workers=1),
    # Feature maps and filter grids are one forward pass and some PNG encoding.
    "inspect": ServingSpec(batch_size=4, max_batch_delay_ms=5, response_timeout_s=120),
}

INDEX_BACKENDS = ("faiss", "milvus")
INDEX_TYPES = ("flat", "hnsw", "ivf")
INDEX_METRICS = ("cosine", "l2")


@dataclass(frozen=True)
class IndexSpec:
    """The feature index behind ``<m>-neighbours`` (``[index]`` in the spec); see docs/neighbours.md."""

    backend: str = "faiss"
    """faiss: embedded, one file set per model; milvus: a Milvus server (or milvus-lite file)."""
    type: str = "flat"
    """flat: exact search; hnsw or ivf: approximate, for large galleries."""
    metric: str = "cosine"
    """cosine: distance = 1 - cosine similarity, in [0, 2]; l2: Euclidean distance."""
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int = 0
    """IVF lists; 0: chosen at training time from the gallery size (about 4 sqrt(n), at least
    39 vectors per list)."""
    ivf_nprobe: int = 0
    """IVF lists probed per search; 0: calibrated when the lists are trained, the fewest that
    reach recall@10 >= 0.97 on a sample of the gallery (``faiss_structures.calibrate_nprobe``).
    Milvus has no calibration: 0 means 16 there."""
    ivf_train_size: int = 2048
    """An IVF index answers exactly (flat) until it holds this many vectors, then trains on them."""
    snapshot_every: int = 10_000
    """Writes between snapshots; the write-ahead log holds the rest."""
    uri: str = ""
    """milvus: ``http://host:19530`` for a server, or a ``.db`` path for milvus-lite (relative
    paths resolve in the model's folder, ``<index root>/<model>/``). Empty: ``milvus.db`` there."""
    token_env: str = ""
    """milvus: the environment variable holding the token (``user:password`` or an API key);
    read once, at worker start. The token itself never goes in a spec."""
    collection: str = ""
    """milvus: the collection name; empty: the model name."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str
    num_classes: int
    weights: Path
    labels: tuple[str, ...]
    input: InputSpec
    layers: LayerSpec = LayerSpec()
    endpoints: tuple[str, ...] = ENDPOINTS
    serving: dict[str, ServingSpec] = field(default_factory=dict)
    index: IndexSpec = IndexSpec()
    inspect: InspectSpec = InspectSpec()
    description: str = ""
    weights_sha256: str = ""
    """SHA-256 of the weights file, written by ``convscope-archive`` into the archived spec and
    checked before the weights are read: a corrupted or swapped file is refused. Empty: none."""
    runtime: str = "torch"
    """What runs forward passes: "torch", or "onnx" (ONNX Runtime; gradients stay on PyTorch)."""
    onnx: Path | None = None
    """The exported graph, written by ``convscope-archive`` for ``runtime = "onnx"``; None in a
    recipe (the model is then exported in memory when it loads)."""
    onnx_sha256: str = ""
    """SHA-256 of ``onnx``, recorded and checked like ``weights_sha256``."""

    def serving_for(self, endpoint: str) -> ServingSpec:
        return self.serving.get(endpoint, DEFAULT_SERVING.get(endpoint, ServingSpec()))


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    """Construct a frozen dataclass from a TOML table, refusing unknown keys."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def _check_input(spec: InputSpec, where: str) -> None:
    if len(spec.size) != 2 or min(spec.size) < 8:
        raise SpecError(f"{where}.size must be [H, W] with both at least 8, got {list(spec.size)}")
    if spec.channels not in (1, 3):
        raise SpecError(f"{where}.channels must be 1 or 3, got {spec.channels}")
    for key, allowed in (("resize", RESIZE_MODES), ("invert", INVERT_MODES),
                         ("interpolation", INTERPOLATIONS)):
        if getattr(spec, key) not in allowed:
            raise SpecError(f"{where}.{key} must be one of {allowed}, got {getattr(spec, key)!r}")
    if len(spec.mean) != spec.channels or len(spec.std) != spec.channels:
        raise SpecError(f"{where}: mean and std need {spec.channels} value(s) each")
    if any(s <= 0 for s in spec.std):
        raise SpecError(f"{where}.std values must be positive")


def _check_index(spec: IndexSpec) -> None:
    for key, allowed in (("backend", INDEX_BACKENDS), ("type", INDEX_TYPES), ("metric", INDEX_METRICS)):
        if getattr(spec, key) not in allowed:
            raise SpecError(f"index.{key} must be one of {allowed}, got {getattr(spec, key)!r}")
    for key in ("hnsw_m", "ef_construction", "ef_search", "ivf_train_size", "snapshot_every"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"index.{key} must be a positive integer, got {value!r}")
    for key in ("ivf_nlist", "ivf_nprobe"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SpecError(f"index.{key} must be 0 (auto) or a positive integer, got {value!r}")


def _inspect(table: dict[str, Any]) -> InspectSpec:
    spec = _build(InspectSpec, table, "inspect")
    layers = spec.layers
    if not (layers == "auto" or (isinstance(layers, tuple) and all(isinstance(n, str) and n for n in layers))):
        raise SpecError(f"inspect.layers must be \"auto\" or a list of layer names, got {layers!r}")
    if not isinstance(spec.image_side, int) or isinstance(spec.image_side, bool) or spec.image_side < 0:
        raise SpecError(f"inspect.image_side must be 0 (keep no images) or a positive integer, got {spec.image_side!r}")
    return spec


def _inside(base: Path, value: str, what: str, confine: bool) -> Path:
    """``base / value``, resolved; with ``confine``, refused unless it stays inside ``base`` (an
    archived spec names files of its own archive, never ``../`` or an absolute path)."""
    path = (base / value).resolve()
    if confine and not path.is_relative_to(base.resolve()):
        raise SpecError(f"{what} {value!r} is outside the model's folder: refused")
    return path


def _labels(value: Any, base: Path, num_classes: int, confine: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        path = _inside(base, value, "labels", confine)
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError(f"labels file {path} unreadable: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("labels must be a list of strings or a path to a JSON list of strings")
    if len(value) != num_classes:
        raise SpecError(f"{len(value)} labels for num_classes = {num_classes}")
    return tuple(value)


def _runtime(doc: dict[str, Any], base: Path, confine: bool) -> dict[str, Any]:
    """``runtime``, ``onnx`` and ``onnx_sha256``, popped from ``doc`` and validated."""
    runtime, onnx, digest = doc.pop("runtime", "torch"), doc.pop("onnx", None), doc.pop("onnx_sha256", "")
    if runtime not in RUNTIMES:
        raise SpecError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if (onnx is not None or digest) and runtime != "onnx":
        raise SpecError("onnx and onnx_sha256 apply only with runtime = 'onnx'")
    if onnx is not None and not isinstance(onnx, str):
        raise SpecError(f"onnx must be a path, got {onnx!r}")
    return {"runtime": runtime, "onnx_sha256": digest,
            "onnx": None if onnx is None else _inside(base, onnx, "onnx", confine)}


def parse_spec(doc: dict[str, Any], base: Path, confine: bool = False) -> ModelSpec:
    """Validate a spec document; relative paths resolve against ``base`` (the spec's folder);
    with ``confine`` (a spec inside an archive) they must stay inside it."""
    doc = dict(doc)
    try:
        name, arch, num_classes = doc.pop("name"), doc.pop("arch"), int(doc.pop("num_classes"))
        weights, labels = doc.pop("weights"), doc.pop("labels")
        input_table = doc.pop("input")
    except KeyError as exc:
        raise SpecError(f"spec is missing required key {exc.args[0]!r}") from exc
    input_spec = _build(InputSpec, input_table, "input")
    _check_input(input_spec, "input")
    layers = _build(LayerSpec, doc.pop("layers", {}), "layers")
    endpoints = tuple(doc.pop("endpoints", ENDPOINTS))
    bad = [e for e in endpoints if e not in ENDPOINTS]
    if bad:
        raise SpecError(f"unknown endpoint(s) {bad}; known: {list(ENDPOINTS)}")
    serving = {ep: _build(ServingSpec, table, f"serving.{ep}")
               for ep, table in doc.pop("serving", {}).items()}
    if serving.get("neighbours", ServingSpec(workers=1)).workers != 1:
        raise SpecError("serving.neighbours.workers must be 1: the index has exactly one writer")
    index = _build(IndexSpec, doc.pop("index", {}), "index")
    _check_index(index)
    inspect = _inspect(doc.pop("inspect", {}))
    description = doc.pop("description", "")
    weights_sha256 = doc.pop("weights_sha256", "")
    runtime = _runtime(doc, base, confine)
    if doc:
        raise SpecError(f"unknown top-level key(s) {sorted(doc)}")
    if ":" not in arch:
        raise SpecError(f"arch must be 'timm:<name>', 'torchvision:<name>' or 'convscope:<name>', got {arch!r}")
    return ModelSpec(name=name, arch=arch, num_classes=num_classes,
                     weights=_inside(base, weights, "weights", confine),
                     labels=_labels(labels, base, num_classes, confine),
                     input=input_spec, layers=layers, endpoints=endpoints, serving=serving,
                     index=index, inspect=inspect, description=description, weights_sha256=weights_sha256,
                     **runtime)


def read_spec_document(path: str | Path) -> dict[str, Any]:
    """The raw document of a spec file: TOML (recipes) or JSON (inside a model archive)."""
    path = Path(path)
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc


def load_spec(path: str | Path, weights: Path | None = None, confine: bool = False) -> ModelSpec:
    """Read and validate a spec file; relative paths resolve against its folder (and with
    ``confine`` must stay in it). ``weights`` replaces the spec's weights file (``--weights`` of
    the archive and index tools), and with it any recorded digest and any ONNX export of the
    old weights."""
    spec = parse_spec(read_spec_document(path), Path(path).parent, confine)
    return spec if weights is None else replace(spec, weights=Path(weights).resolve(), weights_sha256="",
                                                onnx=None, onnx_sha256="")
