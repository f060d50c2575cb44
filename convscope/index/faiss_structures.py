"""FAISS structures behind ``FaissIndex``: building, training, searching and (de)serialising
the id-mapped indexes, with no state of their own."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

from ..spec import IndexSpec
from . import storage
from .base import Entry


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def new_faiss_index(spec: IndexSpec, dim: int) -> faiss.Index:
    """An empty id-mapped index of the spec's type (IVF starts flat, see the module doc)."""
    metric = faiss_metric(spec.metric)
    if spec.type == "hnsw":
        base = faiss.IndexHNSWFlat(dim, spec.hnsw_m, metric)
        base.hnsw.efConstruction = spec.ef_construction
    else:
        base = faiss.IndexFlatIP(dim) if metric == faiss.METRIC_INNER_PRODUCT else faiss.IndexFlatL2(dim)
    return faiss.IndexIDMap2(base)


def inner(index: faiss.Index) -> faiss.Index:
    """The searching index: inside ``IndexIDMap2`` (flat, HNSW), or the IVF index itself (IVF
    takes int64 ids natively; wrapping it in an id map breaks ``remove_ids``)."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def stored(index: faiss.Index) -> tuple[np.ndarray, np.ndarray]:
    """(slots int64 [N], vectors float32 [N, D]) held by ``index``."""
    if index.ntotal == 0:
        return np.zeros(0, np.int64), np.zeros((0, index.d), np.float32)
    if isinstance(index, faiss.IndexIVF):
        lists = index.invlists
        slots = np.concatenate([faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                                for i in range(index.nlist) if lists.list_size(i)]).astype(np.int64)
        return slots, index.reconstruct_batch(slots)
    slots = faiss.vector_to_array(index.id_map).astype(np.int64)
    return slots, inner(index).reconstruct_n(0, index.ntotal)


def train_ivf(vectors: np.ndarray, spec: IndexSpec) -> faiss.IndexIVFFlat:
    """An empty IVF index trained (k-means, FAISS's fixed seed) on float32 [N, D] ``vectors``;
    ``nlist`` from the spec, or about 4 sqrt(N) with at least 39 vectors per list."""
    n, dim = vectors.shape
    nlist = spec.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
    quantiser = faiss.IndexFlatIP(dim) if spec.metric == "cosine" else faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantiser, dim, nlist, faiss_metric(spec.metric))
    index.train(vectors)  # the Python wrapper keeps the quantiser alive
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove and reconstruct by slot
    return index


CALIBRATION_QUERIES = 256
CALIBRATION_RECALL = 0.97
"""Above the 0.95 goal: the sample is the gallery's own vectors, fresh queries lose a little."""
LEGACY_NPROBE = 16
"""nprobe of IVF snapshots written before calibration (the old fixed default)."""


def calibrate_nprobe(index: faiss.IndexIVF, vectors: np.ndarray, slots: np.ndarray, k: int = 10,
                     target: float = CALIBRATION_RECALL) -> int:
    """The fewest probes at which ``index`` (holding ``vectors`` under ids ``slots``) finds
    ``target`` of the exact ``k`` nearest neighbours of a fixed sample of its own vectors, each
    query's own entry left out: doubling from 1, then bisecting. How many lists a query's
    neighbours spread over depends on the data and its dimension (10k x 1280 needs 64 of 256
    lists where 100k x 128 needs 4 of 1264, BENCHMARKS.md), so no fixed default fits both."""
    n = len(vectors)
    sample = np.random.default_rng(0).choice(n, size=min(CALIBRATION_QUERIES, n), replace=False)
    queries = vectors[sample]
    _, truth = faiss.knn(queries, vectors, k + 1, metric=index.metric_type)  # exact, without a copy
    truth_slots = [set(slots[row[row >= 0]].tolist()) - {slots[q]} for row, q in zip(truth, sample)]
    needed = target * sum(len(t) for t in truth_slots)
    params = faiss.SearchParametersIVF()

    def enough(nprobe: int) -> bool:
        params.nprobe = nprobe
        _, found = index.search(queries, k + 1, params=params)
        return sum(len(t & set(row.tolist())) for t, row in zip(truth_slots, found)) >= needed

    high = 1
    while high < index.nlist and not enough(high):
        high *= 2
    high = min(high, index.nlist)
    low = high // 2  # falls short (or is 0)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def read_faiss(read) -> faiss.Index:
    return faiss.read_index(faiss.PyCallbackIOReader(read))


def write_faiss(index: faiss.Index, write) -> None:
    faiss.write_index(index, faiss.PyCallbackIOWriter(write))


def tombstone_filter(dead: set[int]) -> tuple | None:
    """(IDSelectorBatch, IDSelectorNot) excluding the ``dead`` slots, or None if there are none.
    Built once per change of ``dead``, not per search: sorting a large tombstone set per query
    would cost more than the search."""
    if not dead:
        return None
    batch = faiss.IDSelectorBatch(np.array(sorted(dead), np.int64))
    return batch, faiss.IDSelectorNot(batch)


def probes(ivf: faiss.IndexIVF, spec: IndexSpec) -> int:
    """Lists an IVF search scans: the spec's ``ivf_nprobe`` (at most nlist), or when it is 0
    the value calibrated at training and kept with the index."""
    return min(spec.ivf_nprobe, ivf.nlist) if spec.ivf_nprobe else ivf.nprobe


def search_params(index: faiss.Index, spec: IndexSpec, k: int,
                  tombstones: tuple | None) -> faiss.SearchParameters | None:
    """Search parameters (beam, probes, the ``tombstone_filter``); the caller keeps the filter's
    SWIG objects alive until the search returns."""
    base = inner(index)
    if isinstance(base, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(spec.ef_search, k)
    elif isinstance(base, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = probes(base, spec)
    else:
        return None
    if tombstones is not None:
        params.sel = tombstones[1]
    return params


def snapshot_entries(path: Path) -> Iterator[Entry]:
    """The entries of a snapshot file (a built gallery), vectors as stored."""
    _, rows, index = storage.read_snapshot(path, read_faiss)
    slots, vectors = stored(index)
    by_slot = {slot: i for i, slot in enumerate(slots.tolist())}
    for key, slot, label, metadata in json.loads(rows):
        yield Entry(key, vectors[by_slot[slot]], label, metadata)
