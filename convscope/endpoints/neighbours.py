"""Nearest neighbours in feature space: search, index writes and stats over one ``FeatureIndex``.

One request is one operation (``op``, default ``search``):

* ``search``: an image (or a ``vector``) and ``k`` -> the ``k`` nearest stored entries;
* ``add``: an image (or a ``vector``), ``id``, optional ``label`` and ``metadata`` -> upserted;
* ``delete``: ``id`` -> removed (404 if unknown);
* ``stats``: count, dim, metric, index type, backend;
* ``project``: 2-D PCA / t-SNE / UMAP coordinates of the gallery, of the entries with given
  ``labels``, or of the ``k`` nearest entries of an image (or vector) plus it; optionally a
  scatter plot. Cached per index version (``convscope.index.projection``).

The batch's images are embedded in one forward pass; operations are then applied in arrival
order, so a search after an add in the same batch sees it. Consecutive adds share one durable
commit (one fsync). Each item still fails alone: a bad id or vector is that item's 400.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from .. import metrics
from ..config import EngineConfig
from ..envelope import Param
from ..errors import BadRequest, ServiceError
from ..index import Entry, FeatureIndex
from ..index.activations import ActivationRow, ActivationStore
from ..index.base import MAX_ID_CHARS, MAX_LABEL_CHARS, TooManyEntries
from ..index.projection import METHODS, Layout, LayoutCache, project, scatter_png
from ..inspect.examples import image_copy, row_info, summaries
from ..models import LoadedModel
from ..schemas import (
    IndexStatsResult,
    IndexWriteResult,
    NeighboursRequest,
    NeighboursResult,
    ProjectedPoint,
    ProjectionResult,
)
from .base import Endpoint, Outcome, Prepared
from .classify import embed

OPS = ("search", "add", "delete", "stats", "project")
SUBSETS = ("all", "labels", "neighbours")
APPLIES = {"search": {"k", "vector"}, "add": {"id", "label", "metadata", "vector"},
           "delete": {"id"}, "stats": set(),
           "project": {"method", "subset", "labels", "seed", "plot", "k", "vector"}}
MAX_VECTOR_VALUES = 65_536


class Pending(NamedTuple):
    """An add waiting for its group commit: its place in the batch, its entry, its store row."""

    position: int
    entry: Entry
    row: ActivationRow | None


class NeighboursEndpoint(Endpoint):
    name = "neighbours"
    image_required = False

    def __init__(self, model: LoadedModel, config: EngineConfig, index: FeatureIndex,
                 store: ActivationStore | None = None) -> None:
        super().__init__(model, config)
        self.index, self.store = index, store
        self.layouts = LayoutCache(config.projection_cache_entries)
        metrics.INDEX_ENTRIES.labels(model.spec.name).set(index.count())
        if store is not None:
            metrics.ACTIVATION_STORE_ENTRIES.labels(model.spec.name).set(store.count())

    def full_image(self, request: NeighboursRequest) -> bool:
        """An add that the top-activation store keeps is decoded in full, as ``<m>-inspect``
        decodes it, so its stored maxima are what ``op=feature_maps`` reports for the same bytes."""
        return self.store is not None and request.op == "add"

    @contextmanager
    def _timed(self, op: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            name = self.model.spec.name
            metrics.INDEX_OPERATION_DURATION.labels(name, op).observe(time.perf_counter() - started)
            if op in ("add", "delete"):
                metrics.INDEX_ENTRIES.labels(name).set(self.index.count())

    def _count_writes(self, op: str, items: int, error: ServiceError | None) -> None:
        """``ok``; ``rejected``: the client's error (an unknown id, a bad vector); ``failed``: the
        index could not take the write (disk full, Milvus down, corruption): what operators page on."""
        outcome = "ok" if error is None else "rejected" if error.status < 500 else "failed"
        metrics.INDEX_WRITES.labels(self.model.spec.name, op, outcome).inc(items)

    def declare_params(self) -> tuple[Param, ...]:
        cap = self.config.max_neighbours
        return (Param("op", str, "search", choices=OPS), Param("k", int, min(10, cap), 1, cap, cap="max_neighbours"),
                Param("id", str, None, high=MAX_ID_CHARS), Param("label", str, None, high=MAX_LABEL_CHARS),
                Param("metadata", dict, None),
                Param("vector", tuple, None, high=MAX_VECTOR_VALUES),
                Param("method", str, "pca", choices=METHODS), Param("subset", str, "all", choices=SUBSETS),
                Param("labels", list, None), Param("seed", int, 0, 0, 2**31 - 1), Param("plot", bool, False))

    def make_request(self, image: bytes, params: dict[str, Any], given: set[str]) -> NeighboursRequest:
        op = params["op"]
        extra = sorted(given - APPLIES[op] - {"op"})
        if extra:
            raise BadRequest(f"parameter(s) {extra} do not apply to op={op}, which takes {sorted(APPLIES[op]) or 'nothing more'}")
        if op == "project":
            check_projection(image, params, given)
        wants_input = op in ("search", "add") or (op == "project" and params["subset"] == "neighbours")
        if wants_input and bool(image) == (params["vector"] is not None):
            raise BadRequest(f"op={op} needs an image or a vector (exactly one)")
        if not wants_input and image:
            raise BadRequest(f"op={op} takes no image")
        if op in ("add", "delete") and not params["id"]:
            raise BadRequest(f"op={op} needs an id")
        return NeighboursRequest(op=op, image=image, **{k: params[k] for k in (
            "vector", "k", "id", "label", "metadata", "method", "subset", "labels", "seed", "plot")})

    def run(self, requests: list[NeighboursRequest], inputs: torch.Tensor | None,
            prepared: list[Prepared | None]) -> list[Outcome]:
        embedded = iter(embed(self.model, inputs).cpu().numpy() if inputs is not None else ())
        vectors = [next(embedded) if p is not None else
                   (np.asarray(r.vector, np.float32) if r.vector is not None else None)
                   for r, p in zip(requests, prepared)]
        rows = self._activation_rows(requests, inputs, prepared)
        outcomes: list[Outcome] = [None] * len(requests)
        adds: list[Pending] = []
        for i, (request, vector) in enumerate(zip(requests, vectors)):
            if request.op == "add" and not any(p.entry.id == request.id for p in adds):
                outcomes[i] = self.item_guarded(self._entry, request, vector)
                if not isinstance(outcomes[i], ServiceError):
                    adds.append(Pending(i, outcomes[i], rows.get(i)))
                continue
            self._flush(adds, outcomes)
            outcomes[i] = self.item_guarded(self._apply, request, vector, rows.get(i))
        self._flush(adds, outcomes)
        return outcomes

    def _activation_rows(self, requests: list[NeighboursRequest], inputs: torch.Tensor | None,
                         prepared: list[Prepared | None]) -> dict[int, ActivationRow]:
        """The store's row for every add with an image, by request position: one extra pass of the
        PyTorch module over those images, recording the stored layers."""
        wanted = [i for i, (r, p) in enumerate(zip(requests, prepared)) if r.op == "add" and p is not None]
        if self.store is None or not wanted:
            return {}
        image_rows = {i: row for row, i in enumerate(i for i, p in enumerate(prepared) if p is not None)}
        chosen = inputs[torch.tensor([image_rows[i] for i in wanted], device=inputs.device)]
        layers = summaries(self.model, list(self.store.layers), chosen)
        out = {}
        for i, summary in zip(wanted, layers):
            copy, scale = image_copy(prepared[i].image, self.model.spec.inspect.image_side)
            r = requests[i]
            out[i] = ActivationRow(r.id, r.label, r.metadata or {}, row_info(prepared[i].placement, scale), summary, copy)
        return out

    def _commit_adds(self, adds: list[Pending]) -> list[bool]:
        """The index write, and the store's in one transaction around it: both or neither (a
        failed index write rolls the store back). An add by vector drops the id's old
        activations: they no longer describe the entry."""
        entries = [p.entry for p in adds]
        if self.store is None:
            return self.index.add(entries)
        with self.store.transaction():
            self.store.delete([p.entry.id for p in adds if p.row is None])
            self.store.put([p.row for p in adds if p.row is not None])
            created = self.index.add(entries)
        metrics.ACTIVATION_STORE_ENTRIES.labels(self.model.spec.name).set(self.store.count())
        return created

    def _delete(self, key: str) -> None:
        if self.store is None:
            self.index.delete([key])
            return
        with self.store.transaction():
            self.store.delete([key])
            self.index.delete([key])
        metrics.ACTIVATION_STORE_ENTRIES.labels(self.model.spec.name).set(self.store.count())

    def _entry(self, request: NeighboursRequest, vector: np.ndarray) -> Entry:
        entry = Entry(request.id, vector, request.label, request.metadata or {})
        self.index.check_entries([entry])  # this item's 400, before it joins a group commit
        return entry

    def _flush(self, adds: list[Pending], outcomes: list[Outcome]) -> None:
        """Commit the pending adds together; each gets its own result (or the commit's error)."""
        if not adds:
            return
        with self._timed("add"):
            created = self.item_guarded(self._commit_adds, adds)
        self._count_writes("add", len(adds), created if isinstance(created, ServiceError) else None)
        count = self.index.count()
        for j, pending in enumerate(adds):
            outcomes[pending.position] = created if isinstance(created, ServiceError) else \
                IndexWriteResult(self.model.spec.name, "add", pending.entry.id, count, created[j])
        adds.clear()

    def _apply(self, request: NeighboursRequest, vector: np.ndarray | None, row: ActivationRow | None) -> Outcome:
        name = self.model.spec.name
        if request.op == "search":
            with self._timed("search"):
                return NeighboursResult(name, tuple(self.index.search(vector[None, :], request.k)[0]))
        if request.op == "delete":
            with self._timed("delete"):
                try:
                    self._delete(request.id)
                except ServiceError as error:
                    self._count_writes("delete", 1, error)
                    raise
            self._count_writes("delete", 1, None)
            return IndexWriteResult(name, "delete", request.id, self.index.count())
        if request.op == "stats":
            with self._timed("stats"):
                return IndexStatsResult(name, self.index.describe().to_dict())
        if request.op == "project":
            with self._timed("project"):
                return self._project(request, vector)
        return self._flush_one(request, vector, row)

    def _project(self, request: NeighboursRequest, vector: np.ndarray | None) -> ProjectionResult:
        """The layout from the cache of this index version, or computed and cached."""
        near = request.subset == "neighbours"
        query = hashlib.sha256(self.index.prepare_vectors(vector, "query").tobytes()).hexdigest() if near else None
        key = (request.method, request.subset, tuple(sorted(request.labels or ())), request.seed, request.k if near else None, query)
        version = self.index.version()
        layout = self.layouts.get(version, key)
        cached = layout is not None
        if layout is None:
            layout, version = self._layout(request, vector)
            self.layouts.put(version, key, layout)
        points = tuple(ProjectedPoint(i, label, float(x), float(y), row == layout.query) for row, (i, label, (x, y))
                       in enumerate(zip(layout.ids, layout.labels, layout.coordinates.tolist())))
        title = f"{self.model.spec.name}: {request.method}, {len(points)} points"
        return ProjectionResult(self.model.spec.name, request.method, request.subset, request.seed, points,
                                version, cached, scatter_png(layout, title) if request.plot else None)

    def _layout(self, request: NeighboursRequest, vector: np.ndarray | None) -> tuple[Layout, int]:
        cap = self.config.max_projection_points
        if request.subset == "neighbours":
            if request.k + 1 > cap:
                raise BadRequest(f"k={request.k} plus the query is over the server cap max_projection_points ({cap})")
            hits = self.index.search(vector[None, :], request.k)[0]
            stored = self.index.export(ids=[h.id for h in hits])
            vectors = np.vstack([stored.vectors, self.index.prepare_vectors(vector, "query")])
            coordinates = project(vectors, request.method, request.seed)
            return Layout(stored.ids + ("query",), stored.labels + (None,), coordinates, len(stored.ids)), stored.version
        try:
            stored = self.index.export(labels=request.labels, most=cap)
        except TooManyEntries as error:
            raise BadRequest(f"the subset holds {error.found} points, over the server cap max_projection_points "
                             f"({cap}): project some labels, or the neighbours of an image") from None
        return Layout(stored.ids, stored.labels, project(stored.vectors, request.method, request.seed)), stored.version

    def _flush_one(self, request: NeighboursRequest, vector: np.ndarray, row: ActivationRow | None) -> Outcome:
        """An add whose id is already pending in this batch: committed on its own, in order."""
        outcomes: list[Outcome] = [None]
        self._flush([Pending(0, self._entry(request, vector), row)], outcomes)
        return outcomes[0]


def check_projection(image: bytes, params: dict[str, Any], given: set[str]) -> None:
    """op=project's parameters agree with its ``subset``: labels only with subset=labels; an
    image, vector or k only with subset=neighbours. 400s say which."""
    subset = params["subset"]
    if (subset == "labels") != (params["labels"] is not None):
        raise BadRequest("op=project takes labels (a list) with subset=labels, and only then")
    if subset != "neighbours" and (image or params["vector"] is not None or "k" in given):
        raise BadRequest("op=project takes an image (or vector) and k only with subset=neighbours")
