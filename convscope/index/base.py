"""The ``FeatureIndex`` contract every backend keeps, and the checks every write goes through.

Results are named (``Neighbour``), never FAISS's positional ``(D, I)``. Distances are
comparable across backends: for ``cosine``, ``1 - cos(q, v)`` in [0, 2]; for ``l2``, the
Euclidean distance (not its square). Neighbours come nearest first.

Semantics shared by all backends (tested on each, ``tests/unit/test_index_contract.py``):

* ids are strings (1-256 printable characters); ``add`` of a known id replaces its vector,
  label and metadata (an upsert) and reports ``created=False`` for it;
* ``add`` and ``delete`` return only once the write is durable (see each backend);
* ``delete`` of an unknown id is a ``NotFound`` and deletes nothing of the batch;
* ``search`` with ``k`` above the count returns every entry (``k`` is clamped); an empty index
  returns no neighbours;
* a batch of writes is validated whole before any of it is applied;
* ``export`` reads entries back (id order) and ``version`` changes with every write.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import BadRequest

MAX_ID_CHARS = 256
MAX_LABEL_CHARS = 256
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True)
class Entry:
    """One gallery item to write."""

    id: str
    vector: np.ndarray
    """float32 [D]."""
    label: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbour:
    id: str
    distance: float
    label: str | None
    metadata: dict[str, Any]

    def to_dict(self) -> dict:
        return {"id": self.id, "distance": self.distance, "label": self.label, "metadata": self.metadata}


@dataclass(frozen=True)
class Stored:
    """Stored entries read back whole (for projections), sorted by id."""

    ids: tuple[str, ...]
    vectors: np.ndarray
    """float32 [N, D], as stored (unit-normalised for cosine)."""
    labels: tuple[str | None, ...]
    version: int
    """``FeatureIndex.version()`` when these were read."""


class TooManyEntries(ValueError):
    """More entries match an ``export`` than the caller's ``most``; nothing was read. Not a
    ServiceError (the error types are a closed list the alert rules select): the caller says
    what the limit means to its client (``op=project``: a BadRequest naming the cap)."""

    def __init__(self, found: int, most: int) -> None:
        super().__init__(f"{found} index entries match; at most {most} can be read at once")
        self.found, self.most = found, most


@dataclass(frozen=True)
class IndexStats:
    count: int
    dim: int
    metric: str
    index_type: str
    backend: str
    details: dict[str, Any] = field(default_factory=dict)
    """Backend specifics: snapshot sequence, log size, IVF training state, Milvus URI..."""

    def to_dict(self) -> dict:
        return {"count": self.count, "dim": self.dim, "metric": self.metric,
                "index_type": self.index_type, "backend": self.backend, **self.details}


class FeatureIndex(ABC):
    """A persistent, single-writer nearest-neighbour index of string-keyed vectors."""

    backend: str

    def __init__(self, dim: int, metric: str, index_type: str) -> None:
        self.dim, self.metric, self.index_type = dim, metric, index_type

    @abstractmethod
    def add(self, entries: Sequence[Entry]) -> list[bool]:
        """Upsert ``entries``; durable on return. One flag per entry: True if the id was new."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; durable on return. ``NotFound`` (and nothing removed) if any is unknown."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> list[list[Neighbour]]:
        """float32 [Q, D] queries -> for each, up to ``k`` neighbours, nearest first."""

    @abstractmethod
    def contains(self, ids: Sequence[str]) -> list[bool]:
        """Which of ``ids`` are stored (the ingest CLI resumes with this)."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored entries."""

    @abstractmethod
    def close(self) -> None:
        """Flush, release the writer lock and free resources; the object is unusable after."""

    @abstractmethod
    def version(self) -> int:
        """A number that changes with every acknowledged add or delete made through this object
        (the index has one writer), so a cache keyed on it is never stale."""

    @abstractmethod
    def export(self, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None,
               most: int | None = None) -> Stored:
        """The stored entries with one of ``ids`` (unknown ids are skipped) or one of ``labels``
        (or all), sorted by id; ``TooManyEntries`` before reading anything if more than ``most``."""

    def describe(self) -> IndexStats:
        return IndexStats(self.count(), self.dim, self.metric, self.index_type, self.backend)

    def __enter__(self) -> "FeatureIndex":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared validation -------------------------------------------------------------------

    def check_queries(self, queries: np.ndarray, k: int) -> np.ndarray:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise BadRequest(f"k must be a positive integer, got {k!r}")
        return self.prepare_vectors(queries, "query")

    def prepare_vectors(self, vectors: np.ndarray, what: str = "vector") -> np.ndarray:
        """float32 C-contiguous [N, D], finite, unit-normalised for cosine. 400s say why."""
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise BadRequest(f"{what} must have {self.dim} values, got shape {list(array.shape)}")
        if not np.isfinite(array).all():
            raise BadRequest(f"{what} has NaN or infinite values")
        if self.metric == "cosine":
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            if (norms == 0).any():
                raise BadRequest(f"a zero {what} has no direction: cosine distance is undefined")
            array = array / norms
        return np.ascontiguousarray(array, dtype=np.float32)

    def check_entries(self, entries: Sequence[Entry]) -> np.ndarray:
        """Validate a write batch whole; returns its prepared vectors float32 [N, D]."""
        ids = [e.id for e in entries]
        for entry in entries:
            check_id(entry.id)
            check_label(entry.label)
            check_metadata(entry.metadata)
        if len(set(ids)) != len(ids):
            raise BadRequest("the same id appears twice in one write batch")
        if not entries:
            return np.zeros((0, self.dim), np.float32)
        rows = []
        for entry in entries:
            try:
                row = np.asarray(entry.vector, np.float32).ravel()
            except (TypeError, ValueError):
                raise BadRequest(f"the vector of {entry.id!r} is not numeric") from None
            if row.shape != (self.dim,):
                raise BadRequest(f"the vector of {entry.id!r} has {row.size} values; this index holds {self.dim}")
            rows.append(row)
        return self.prepare_vectors(np.stack(rows))

    def to_distance(self, scores: np.ndarray) -> np.ndarray:
        """FAISS/Milvus raw scores -> ConvScope distances (inner product or squared L2)."""
        if self.metric == "cosine":
            return np.clip(1.0 - scores, 0.0, 2.0)
        return np.sqrt(np.maximum(scores, 0.0))


def check_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise BadRequest(f"id must be a string of 1-{MAX_ID_CHARS} printable characters, got {str(value)[:60]!r}")
    return value


def check_label(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_LABEL_CHARS):
        raise BadRequest(f"label must be a string of at most {MAX_LABEL_CHARS} characters or null")
    return value


def check_metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("metadata must be a JSON object")
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"metadata must be plain JSON (no NaN): {exc}") from exc
    if size > MAX_METADATA_BYTES:
        raise BadRequest(f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return value
