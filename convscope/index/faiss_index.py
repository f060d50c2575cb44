"""The embedded backend: a FAISS index in memory, made durable by ``storage``'s log and snapshots.

Each entry gets an internal int64 slot (FAISS ids are integers; ours are strings); ``_rows``
maps id -> (slot, label, metadata). Types (``[index] type`` in the spec):

* ``flat``: exact search (``IndexFlatIP`` for cosine on unit vectors, ``IndexFlatL2``).
* ``hnsw``: ``IndexHNSWFlat``; FAISS cannot remove from HNSW, so deletes and replaced entries
  are tombstones filtered out at search time and dropped when a snapshot rebuilds the graph.
* ``ivf``: ``IndexIVFFlat``; answers exactly until ``ivf_train_size`` entries exist, then the
  next snapshot trains the coarse quantiser on them (k-means, fixed seed) and converts.

Concurrency: one ``threading.Lock`` serialises writes and searches inside the process, so a
search never sees a half-applied write; ``storage.WriterLock`` keeps other processes out.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import faiss
import numpy as np

from ..errors import IndexCorrupt, NotFound, SpecError
from ..spec import IndexSpec
from . import storage
from .base import Entry, FeatureIndex, IndexStats, Neighbour, Stored, TooManyEntries, check_id
from .faiss_structures import (
    CALIBRATION_RECALL,
    LEGACY_NPROBE,
    calibrate_nprobe,
    inner,
    new_faiss_index,
    probes,
    read_faiss,
    search_params,
    snapshot_entries,
    stored,
    tombstone_filter,
    train_ivf,
    write_faiss,
)
from .storage import OP_ADD, OP_DELETE, Record

__all__ = ["FaissIndex", "snapshot_entries"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
SNAPSHOT_LOG_RATIO = 0.25
IVF_RETRAIN_GROWTH = 4


class Row(NamedTuple):
    slot: int
    label: str | None
    metadata: dict[str, Any]


class FaissIndex(FeatureIndex):
    backend = "faiss"

    def __init__(self, spec: IndexSpec, dim: int, directory: Path) -> None:
        super().__init__(dim, spec.metric, spec.type)
        self.spec, self.directory = spec, directory
        self._lock = threading.Lock()
        self._index = new_faiss_index(spec, dim)
        self._rows: dict[str, Row] = {}
        self._ids: dict[int, str] = {}
        self._dead: set[int] = set()
        self._tombstones: tuple | None = None  # the search filter of _dead, rebuilt when it changes
        self._next_slot = 0
        self._seq = 0
        self._snapshot_seq = 0
        self._writes_since_snapshot = 0
        self._ivf_trained_on = 0
        self._log: storage.WriteAheadLog | None = None
        self._writer: storage.WriterLock | None = None

    # -- opening and recovery --------------------------------------------------------------

    @classmethod
    def open(cls, spec: IndexSpec, dim: int, directory: Path, seed: Path | None = None) -> "FaissIndex":
        """Open or create the index in ``directory``: snapshot, then the log after it."""
        directory.mkdir(parents=True, exist_ok=True)
        self = cls(spec, dim, directory)
        self._writer = storage.WriterLock(directory)
        try:
            for stale in directory.glob("*.tmp"):
                stale.unlink()  # a snapshot interrupted before its rename
            if seed is not None and not storage.snapshots(directory) and not storage.logs(directory):
                self._install_seed(seed)
            self._recover()
            self._log = storage.WriteAheadLog(directory, self._seq + 1)
        except BaseException:
            self._writer.release()
            raise
        return self

    def _install_seed(self, seed: Path) -> None:
        """Copy a built gallery in as this index's first snapshot (atomically); its checksum is
        checked once, when ``_recover`` loads it."""
        header = storage.read_header(seed)
        target = storage.snapshot_path(self.directory, int(header["seq"]))
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(seed, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        storage.fsync_dir(self.directory)
        log.info("index %s: seeded from %s", self.directory, seed)

    def _recover(self) -> None:
        found = storage.snapshots(self.directory)
        if found:
            self._load_snapshot(found[-1])
        pending: list[Record] = []  # consecutive adds of distinct ids, applied as one batch
        pending_ids: set[str] = set()
        for record in storage.read_log(self.directory, self._seq):
            if pending and (record.op == OP_DELETE or record.body["id"] in pending_ids):
                self._apply_adds(pending)
                pending, pending_ids = [], set()
            if record.op == OP_ADD:
                pending.append(record)
                pending_ids.add(record.body["id"])
            else:
                self._apply_delete(record.body["id"])
            self._seq = record.seq
        if pending:
            self._apply_adds(pending)
        self._check_consistent("after recovery")
        for path in found[:-1]:
            path.unlink()  # superseded (a crash came between a snapshot and the cleanup)

    def _load_snapshot(self, path: Path) -> None:
        header, rows, index = storage.read_snapshot(
            path, read_faiss)
        mine = {"dim": self.dim, "metric": self.metric, "type": self.index_type}
        theirs = {key: header.get(key) for key in mine}
        if theirs != mine:
            raise SpecError(f"index {self.directory} holds {theirs} but the model spec asks for {mine}: "
                            "rebuild the index (convscope-index) or fix the spec")
        self._index = index
        self._seq = self._snapshot_seq = int(header["seq"])
        self._next_slot = int(header["next_slot"])
        self._dead = set(header["dead"])
        self._ivf_trained_on = int(header.get("ivf_trained_on", 0))
        if isinstance(index, faiss.IndexIVF) and "ivf_nprobe" not in header:
            index.nprobe = LEGACY_NPROBE  # written before calibration: FAISS's stored value is 1
        self._rows = {r[0]: Row(int(r[1]), r[2], r[3]) for r in json.loads(rows)}
        self._ids = {row.slot: key for key, row in self._rows.items()}
        self._check_consistent(f"in {path.name}")

    def _check_consistent(self, where: str) -> None:
        if self._index.ntotal - len(self._dead) != len(self._rows):
            raise IndexCorrupt(f"index {self.directory} {where}: {self._index.ntotal} vectors "
                               f"({len(self._dead)} deleted) but {len(self._rows)} metadata rows")

    # -- writes ------------------------------------------------------------------------------

    def add(self, entries: Sequence[Entry]) -> list[bool]:
        vectors = self.check_entries(entries)
        with self._lock:
            created = [e.id not in self._rows for e in entries]
            records = []
            for i, entry in enumerate(entries):
                body = {"id": entry.id, "slot": self._next_slot + i, "label": entry.label,
                        "metadata": entry.metadata}
                records.append(Record(self._seq + 1 + i, OP_ADD, body, vectors[i].tobytes()))
            self._commit(records)
            self._apply_adds(records)
            self._after_write(len(records))
        return created

    def delete(self, ids: Sequence[str]) -> None:
        for key in ids:
            check_id(key)
        with self._lock:
            unknown = [key for key in ids if key not in self._rows]
            if unknown:
                raise NotFound(f"no entry with id {unknown[0]!r} in the index; nothing was deleted")
            unique = list(dict.fromkeys(ids))
            records = [Record(self._seq + 1 + i, OP_DELETE, {"id": key}) for i, key in enumerate(unique)]
            self._commit(records)
            for key in unique:
                self._apply_delete(key)
            self._after_write(len(records))

    def _commit(self, records: list[Record]) -> None:
        if self._log is None:
            raise IndexCorrupt(f"index {self.directory} is closed")
        self._log.append(records)
        self._seq = records[-1].seq if records else self._seq

    def _apply_adds(self, records: list[Record]) -> None:
        replaced = [r.body["id"] for r in records if r.body["id"] in self._rows]
        self._remove_slots([self._rows.pop(key).slot for key in replaced])
        slots = np.array([r.body["slot"] for r in records], np.int64)
        vectors = np.frombuffer(b"".join(r.vector for r in records), np.float32).reshape(len(records), self.dim)
        self._index.add_with_ids(vectors, slots)
        for record, slot in zip(records, slots.tolist()):
            body = record.body
            self._rows[body["id"]] = Row(slot, body["label"], body["metadata"])
            self._ids[slot] = body["id"]
        self._next_slot = max(self._next_slot, int(slots.max()) + 1)

    def _apply_delete(self, key: str) -> None:
        self._remove_slots([self._rows.pop(key).slot])

    def _remove_slots(self, slots: list[int]) -> None:
        if not slots:
            return
        for slot in slots:
            del self._ids[slot]
        if isinstance(inner(self._index), faiss.IndexHNSW):
            self._dead.update(slots)  # HNSW cannot remove: tombstones, dropped at the next snapshot
            self._tombstones = None
        else:
            self._index.remove_ids(np.array(slots, np.int64))

    def _after_write(self, count: int) -> None:
        self._writes_since_snapshot += count
        if self._snapshot_due() or self._ivf_ready() or self._ivf_outgrown():
            try:
                self._checkpoint()
            except OSError:
                # The write is already durable in the log; a snapshot that cannot be written
                # (a full disk) is retried after the next writes, never fails this one.
                log.exception("index %s: snapshot failed; the log still holds every write", self.directory)
                for stale in self.directory.glob("*.tmp"):
                    stale.unlink(missing_ok=True)

    # -- snapshots -----------------------------------------------------------------------------

    def _snapshot_due(self) -> bool:
        """After ``snapshot_every`` writes, and once the log is a quarter of the vectors' size:
        a snapshot rewrites the whole index, so its cost stays proportional to what was added
        (at 1M x 1280 a snapshot is 5 GB; replaying the log at start stays bounded likewise)."""
        log_bytes = self._log.size if self._log else 0
        return self._writes_since_snapshot >= self.spec.snapshot_every \
            and log_bytes >= SNAPSHOT_LOG_RATIO * 4 * self.dim * len(self._rows)

    def _ivf_outgrown(self) -> bool:
        """An IVF index whose gallery has grown 4-fold since its lists were trained retrains."""
        return isinstance(inner(self._index), faiss.IndexIVF) \
            and len(self._rows) >= IVF_RETRAIN_GROWTH * max(1, self._ivf_trained_on)

    def _ivf_ready(self) -> bool:
        base = inner(self._index)
        return self.index_type == "ivf" and not isinstance(base, faiss.IndexIVF) \
            and len(self._rows) >= self.spec.ivf_train_size

    def _rebuild(self) -> None:
        """Train IVF, or rebuild HNSW without its tombstones: from the live vectors."""
        slots, vectors = stored(self._index)
        live = np.array([s not in self._dead for s in slots.tolist()], bool)
        slots, vectors = slots[live], vectors[live]
        if self.index_type == "ivf" and len(slots) >= self.spec.ivf_train_size:
            index = train_ivf(vectors, self.spec)
            self._ivf_trained_on = len(slots)
        else:
            index = new_faiss_index(self.spec, self.dim)
        index.add_with_ids(vectors, slots)
        if isinstance(index, faiss.IndexIVF):  # calibrated on the filled lists
            index.nprobe = calibrate_nprobe(index, vectors, slots)
            log.info("index %s: trained IVF with %d lists on %d vectors; %d probes reach recall@10 %.2f "
                     "on the gallery's own sample", self.directory, index.nlist, len(slots), index.nprobe,
                     CALIBRATION_RECALL)
        self._index, self._dead, self._tombstones = index, set(), None

    def _checkpoint(self) -> None:
        """Snapshot the state at ``_seq``, start a new log, drop the old files (lock held)."""
        if self._ivf_ready() or self._ivf_outgrown() or len(self._dead) > 0.1 * max(1, self._index.ntotal):
            self._rebuild()
        header = {"version": FORMAT_VERSION, "seq": self._seq, "dim": self.dim, "metric": self.metric,
                  "type": self.index_type, "next_slot": self._next_slot, "dead": sorted(self._dead),
                  "ivf_trained_on": self._ivf_trained_on,
                  "ivf_nprobe": self._index.nprobe if isinstance(self._index, faiss.IndexIVF) else 0,
                  "count": len(self._rows)}
        rows = json.dumps([[k, r.slot, r.label, r.metadata] for k, r in self._rows.items()]).encode()
        path = storage.snapshot_path(self.directory, self._seq)
        storage.write_snapshot(path, header, rows,
                               lambda write: write_faiss(self._index, write))
        self._log.rotate(self.directory, self._seq + 1)
        for old in storage.snapshots(self.directory):
            if old != path:
                old.unlink()
        storage.fsync_dir(self.directory)
        self._snapshot_seq, self._writes_since_snapshot = self._seq, 0

    def checkpoint(self) -> None:
        """Write a snapshot now (the log is replayed from it on the next open)."""
        with self._lock:
            self._checkpoint()

    # -- reads ---------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> list[list[Neighbour]]:
        queries = self.check_queries(queries, k)
        with self._lock:
            k = min(k, len(self._rows))
            if k == 0:
                return [[] for _ in range(len(queries))]
            if self._dead and self._tombstones is None:
                self._tombstones = tombstone_filter(self._dead)
            params = search_params(self._index, self.spec, k, self._tombstones)
            scores, slots = self._index.search(queries, k, params=params)
            distances = self.to_distance(scores)
            results = []
            for row_d, row_s in zip(distances.tolist(), slots.tolist()):
                found = []
                for distance, slot in zip(row_d, row_s):
                    if slot >= 0:
                        key = self._ids[slot]
                        row = self._rows[key]
                        found.append(Neighbour(key, float(distance), row.label, row.metadata))
                results.append(found)
            return results

    def contains(self, ids: Sequence[str]) -> list[bool]:
        with self._lock:
            return [key in self._rows for key in ids]

    def count(self) -> int:
        return len(self._rows)

    def version(self) -> int:
        return self._seq  # the write-ahead log's sequence: one step per acknowledged write

    def export(self, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None,
               most: int | None = None) -> Stored:
        with self._lock:
            if ids is not None:
                keys = sorted({key for key in ids if key in self._rows})
            elif labels is not None:
                wanted = set(labels)
                keys = sorted(key for key, row in self._rows.items() if row.label in wanted)
            else:
                keys = sorted(self._rows)
            if most is not None and len(keys) > most:
                raise TooManyEntries(len(keys), most)
            slots = np.array([self._rows[key].slot for key in keys], np.int64)
            vectors = self._index.reconstruct_batch(slots) if len(keys) else np.zeros((0, self.dim), np.float32)
            return Stored(tuple(keys), np.asarray(vectors, np.float32),
                          tuple(self._rows[key].label for key in keys), self._seq)

    def describe(self) -> IndexStats:
        with self._lock:
            base = inner(self._index)
            details = {"seq": self._seq, "snapshot_seq": self._snapshot_seq,
                       "log_bytes": self._log.size if self._log else 0, "tombstones": len(self._dead)}
            if self.index_type == "ivf":
                details["ivf_trained"] = isinstance(base, faiss.IndexIVF)
                details["ivf_nlist"] = base.nlist if isinstance(base, faiss.IndexIVF) else 0
                details["ivf_trained_on"] = self._ivf_trained_on
                details["ivf_nprobe"] = probes(base, self.spec) if isinstance(base, faiss.IndexIVF) else 0
            return IndexStats(len(self._rows), self.dim, self.metric, self.index_type, self.backend, details)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._writer is not None:
                self._writer.release()
                self._writer = None
