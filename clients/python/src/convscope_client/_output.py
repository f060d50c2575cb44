"""How the CLI shows a result: a small table for people, or one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .results import Classification, Explanation, Features, IndexStats, IndexWrite, ModelInfo, Neighbours

_PREVIEW = 6  # feature values shown in a table
_WRITTEN = ("heatmap_png", "overlay_png", "array")  # an explanation's maps: files, not JSON


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


def _describe(result: Any) -> str:
    if isinstance(result, Classification):
        return table(("rank", "class", "label", "score"),
                     [(i, p.class_index, p.label, p.score) for i, p in enumerate(result.predictions, 1)])
    if isinstance(result, Features):
        values = ", ".join(f"{v:.4f}" for v in result.vector[:_PREVIEW])
        return f"layer {result.layer}, dim {result.dim}: [{values}, ...]"
    if isinstance(result, Explanation):
        return (f"{result.method}: target {result.target} ({result.label}, score {result.score:.4f}), "
                f"{result.width}x{result.height}")
    if isinstance(result, Neighbours):
        return table(("rank", "id", "distance", "label", "metadata"),
                     [(i, n.id, n.distance, n.label, n.metadata) for i, n in enumerate(result.neighbours, 1)])
    if isinstance(result, IndexWrite):
        what = "deleted" if result.created is None else ("added" if result.created else "replaced")
        return f"{what} {result.id} in {result.model}: {result.count} entries"
    if isinstance(result, IndexStats):
        rows = [(k, getattr(result, k)) for k in ("count", "dim", "metric", "index_type", "backend")]
        return table(("index", result.model), rows + sorted(result.details.items()))
    if isinstance(result, ModelInfo):
        result = [result]
    return table(("model", "classes", "feature_dim", "input", "endpoints"),
                 [(m.model, m.num_classes, m.feature_dim, f"{m.input_width}x{m.input_height}",
                   ",".join(m.endpoints)) for m in result])


def as_text(record: Record) -> str:
    lines = [f"{record.image}:"] if record.image is not None else []
    lines.append(_describe(record.result))
    lines.extend(f"wrote {p}" for p in record.files)
    return "\n".join(lines)
