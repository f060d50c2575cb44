"""How the CLI shows a result: a small table for people, or one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
    ReceptiveField,
    TopExamples,
)

_PREVIEW = 6  # feature values shown in a table
_WRITTEN = ("heatmap_png", "overlay_png", "array", "raw", "grid_png", "patch_png")  # maps, PNGs: files, not JSON


@dataclass(frozen=True)
class Record:
    """One answer to print: for which image (None for index writes, stats, models), and the
    files written for it."""

    image: str | None
    result: Any
    files: list[Path] = field(default_factory=list)


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as objects, arrays as lists; PNG bytes and maps
    are left out (the CLI writes them to files and lists those)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value) if f.name not in _WRITTEN}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def as_json(record: Record) -> str:
    doc = plain(record.result)
    doc = {"models": doc} if isinstance(doc, list) else doc
    if record.image is not None:
        doc = {"image": record.image, **doc}
    if record.files:
        doc["files"] = [str(p) for p in record.files]
    return json.dumps(doc)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return "" if value is None else str(value)


def _classification(result: Classification) -> str:
    return table(("rank", "class", "label", "score"),
                 [(i, p.class_index, p.label, p.score) for i, p in enumerate(result.predictions, 1)])


def _features(result: Features) -> str:
    values = ", ".join(f"{v:.4f}" for v in result.vector[:_PREVIEW])
    return f"layer {result.layer}, dim {result.dim}: [{values}, ...]"


def _explanation(result: Explanation) -> str:
    return (f"{result.method}: target {result.target} ({result.label}, score {result.score:.4f}), "
            f"{result.width}x{result.height}")


def _neighbours(result: Neighbours) -> str:
    return table(("rank", "id", "distance", "label", "metadata"),
                 [(i, n.id, n.distance, n.label, n.metadata) for i, n in enumerate(result.neighbours, 1)])


def _projection(result: Projection) -> str:
    cached = ", cached" if result.cached else ""
    head = f"{result.method} of {result.subset} in {result.model}: {len(result.points)} points (index version {result.version}{cached})"
    return head + "\n" + table(("id", "label", "x", "y"), [(p.id, p.label, p.x, p.y) for p in result.points[:20]]) \
        + (f"\n... {len(result.points) - 20} more" if len(result.points) > 20 else "")


def _index_write(result: IndexWrite) -> str:
    what = "deleted" if result.created is None else ("added" if result.created else "replaced")
    return f"{what} {result.id} in {result.model}: {result.count} entries"


def _index_stats(result: IndexStats) -> str:
    rows = [(k, getattr(result, k)) for k in ("count", "dim", "metric", "index_type", "backend")]
    return table(("index", result.model), rows + sorted(result.details.items()))


def _models(result: ModelInfo | list[ModelInfo]) -> str:
    models = [result] if isinstance(result, ModelInfo) else result
    return table(("model", "classes", "feature_dim", "input", "endpoints"),
                 [(m.model, m.num_classes, m.feature_dim, f"{m.input_width}x{m.input_height}",
                   ",".join(m.endpoints)) for m in models])


def _by(values: Sequence[Any]) -> str:
    return "x".join(str(v) for v in values)


def _field(rf: ReceptiveField | None) -> tuple[str, str, str]:
    """size, jump, start of a receptive field, ``(y, x)`` pairs as ``HxW``; ``-`` when unknown."""
    if rf is None:
        return "-", "-", "-"
    size = _by(rf.size) + (" (global)" if rf.is_global else "")
    return size, _by(rf.jump), f"{rf.start[0]:g},{rf.start[1]:g}"


def _layers(result: LayerList) -> str:
    head = (f"{result.model}: input {result.input_channels}x{result.input_height}x{result.input_width}, "
            f"cam layer {result.cam_layer}, first conv {result.first_conv or 'none'}, "
            f"stored {', '.join(result.stored_layers) or 'none'}")
    rows = [(i.name, i.type, _by(i.shape), *_field(i.receptive_field), "yes" if i.stored else "")
            for i in result.layers]
    lines = [head, table(("layer", "type", "shape", "field", "jump", "start y,x", "stored"), rows)]
    return "\n".join(lines + ([f"note: {result.note}"] if result.note else []))


def _feature_maps(result: FeatureMaps) -> str:
    head = f"layer {result.layer} [{_by(result.shape)}], maps {result.width}x{result.height}"
    rows = [(i, c.channel, c.mean, c.max, f"{c.argmax[0]},{c.argmax[1]}") for i, c in enumerate(result.channels, 1)]
    return head + "\n" + table(("rank", "channel", "mean", "max", "argmax y,x"), rows)


def _filters(result: Filters) -> str:
    return f"layer {result.layer} [{_by(result.shape)}]: {result.shown} filters shown ({result.mode})"


def _top_examples(result: TopExamples) -> str:
    head = f"layer {result.layer}, channel {result.channel}: {result.count} stored images"
    rows = [(i, e.id, e.label, e.activation, f"{e.position[0]},{e.position[1]}", ",".join(map(str, e.box)),
             f"{e.width}x{e.height}") for i, e in enumerate(result.examples, 1)]
    return head + "\n" + table(("rank", "id", "label", "activation", "position y,x", "box x0,y0,x1,y1", "image"), rows)


_DESCRIBE: dict[type, Callable[[Any], str]] = {
    Classification: _classification, Features: _features, Explanation: _explanation, Neighbours: _neighbours,
    IndexWrite: _index_write, IndexStats: _index_stats, Projection: _projection, LayerList: _layers, FeatureMaps: _feature_maps,
    Filters: _filters, TopExamples: _top_examples,
}


def _describe(result: Any) -> str:
    return _DESCRIBE.get(type(result), _models)(result)


def as_text(record: Record) -> str:
    lines = [f"{record.image}:"] if record.image is not None else []
    lines.append(_describe(record.result))
    lines.extend(f"wrote {p}" for p in record.files)
    return "\n".join(lines)
