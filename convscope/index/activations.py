"""The top-activation store: per gallery entry and stored layer, each channel's maximum
activation and where it is, so ``<m>-inspect`` answers "which images excite channel c most".

One SQLite file (``activation_layout.py`` has the schema), one writer (the ``<m>-neighbours``
worker or a build tool, held by a ``flock``), any number of readers in other processes:

* durable: WAL with synchronous=FULL, so a write has reached the disk when ``put``/``delete``
  (or the ``transaction`` block around them) returns; a crash loses only unacknowledged writes;
* a change feed: every write takes the next sequence number; a put stamps its row, a delete
  leaves a tombstone. ``ActivationReader.refresh`` applies what came after the last number it
  saw (one indexed query when nothing did), without a reload;
* bounded: the writer keeps the newest ``KEEP_DELETES`` tombstones at most, recording the newest
  it dropped in ``meta.trimmed``; a reader that is behind that number reloads in full.

A reader holds the maxima and positions in RAM (``activation_table.py``: [C, capacity] arrays,
``top`` in milliseconds on a million entries); labels, metadata and images stay on disk.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import BadRequest, InternalError, NotFound, SpecError
from .activation_layout import (Layers, Layout, check_layers, connect, create, layer_difference, lock_writer,
                                prepare, read_layers, sql_errors)
from .activation_table import Table, code_value, top_slots
from .base import check_id

log = logging.getLogger(__name__)

STORE_FILE = "activations.sqlite"
KEEP_DELETES = 10_000
_BATCH = 1024


@dataclass(frozen=True)
class LayerSummary:
    maxima: np.ndarray
    """float32 [C]: each channel's maximum over the layer's map (stored as float16)."""
    argmax: np.ndarray
    """int64 [C]: where it is, the flat index y * w + x into the layer's h x w map."""


@dataclass(frozen=True)
class ActivationRow:
    id: str
    label: str | None
    metadata: dict
    info: dict
    """JSON object, opaque to the store (the image size, where it sat in the network input)."""
    layers: dict[str, LayerSummary]
    """Exactly the store's layers."""
    image: bytes | None = None
    """An encoded copy of the image (for patches), or None."""


class ActivationStore:
    """The writer. Every method may raise IndexUnavailable (503) when the disk fails."""

    def __init__(self, path: Path, conn, lock_fd: int, layers: Layers) -> None:
        self.path, self._conn, self._lock_fd = path, conn, lock_fd
        self.layers, self._layout = layers, Layout(layers)
        self.keep_deletes = KEEP_DELETES
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, path: Path, layers: Mapping[str, tuple[int, int, int]],
             seed: Path | None = None) -> "ActivationStore":
        """Open or create the store at ``path`` for ``layers`` {name: (C, h, w)}. A new store is
        an atomic copy of ``seed`` (a store file a build wrote) when given, checked against
        ``layers``; an existing one whose layers differ is a SpecError naming the difference."""
        wanted = check_layers(layers)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = lock_writer(path)
        conn = None
        try:
            if not path.exists():
                create(path, wanted, seed)
            conn = connect(path, readonly=False)
            found = read_layers(conn, path)
            if found != wanted:
                raise SpecError(f"the activation store {path} holds other layers than the spec: "
                                f"{layer_difference(found, wanted)}; rebuild it with convscope-index")
        except BaseException:
            if conn is not None:
                conn.close()
            os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd, wanted)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT: the puts and deletes inside commit together, durable when
        the block exits; ROLLBACK (nothing applied) when it raises. A nested block joins the outer."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with sql_errors(self.path, "start a write"):
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                with sql_errors(self.path, "commit"):
                    self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except Exception:  # the connection is gone; SQLite rolls back on reopen
                log.exception("could not roll back a write to %s", self.path)

    def put(self, rows: Sequence[ActivationRow]) -> None:
        """Upsert ``rows`` (validated whole first; BadRequest says why); durable on return
        unless inside ``transaction``."""
        prepared = [prepare(row, self._layout) for row in rows]
        if len({p[0] for p in prepared}) != len(prepared):
            raise BadRequest("the same id appears twice in one write batch")
        if not prepared:
            return
        with self.transaction(), sql_errors(self.path, "write"):
            first = self._take_seqs(len(prepared))
            self._conn.executemany(
                "INSERT OR REPLACE INTO rows (id, seq, label, metadata, info, summary, image) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", [(p[0], first + i, *p[1:]) for i, p in enumerate(prepared)])

    def delete(self, ids: Sequence[str]) -> None:
        """Remove ``ids``; unknown ones are ignored (the feature index is the authority)."""
        wanted = list(dict.fromkeys(check_id(i) for i in ids))
        if not wanted:
            return
        with self.transaction(), sql_errors(self.path, "delete"):
            gone = [i for i in wanted if self._conn.execute("DELETE FROM rows WHERE id = ?", (i,)).rowcount]
            if gone:
                first = self._take_seqs(len(gone))
                self._conn.executemany("INSERT INTO deletes (seq, id) VALUES (?, ?)",
                                       [(first + n, i) for n, i in enumerate(gone)])
                self._trim()

    def _take_seqs(self, n: int) -> int:
        """Reserve ``n`` sequence numbers (inside the write); returns the first."""
        (last,) = self._conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (last + n,))
        return last + 1

    def _trim(self) -> None:
        """Past ``keep_deletes`` tombstones, drop the oldest down to half of that."""
        (count,) = self._conn.execute("SELECT COUNT(*) FROM deletes").fetchone()
        if count <= self.keep_deletes:
            return
        (cut,) = self._conn.execute("SELECT seq FROM deletes ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                    (self.keep_deletes // 2,)).fetchone()
        self._conn.execute("DELETE FROM deletes WHERE seq <= ?", (cut,))
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'trimmed'", (cut,))

    def ids(self) -> list[str]:
        """Every stored id, ascending."""
        with self._lock, sql_errors(self.path, "read"):
            return [i for (i,) in self._conn.execute("SELECT id FROM rows ORDER BY id")]

    def count(self) -> int:
        with self._lock, sql_errors(self.path, "read"):
            return self._conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def reconcile(self, present: Callable[[Sequence[str]], list[bool]]) -> int:
        """Delete the entries ``present`` (e.g. ``FeatureIndex.contains``) says the feature index
        lacks, left by a crash between the two writes; returns how many. Run at writer start."""
        ids, absent = self.ids(), []
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start:start + _BATCH]
            flags = list(present(chunk))
            if len(flags) != len(chunk):
                raise InternalError(f"reconcile: {len(flags)} answers for {len(chunk)} ids")
            absent += [i for i, here in zip(chunk, flags) if not here]
        if absent:
            log.warning("activation store %s: removing %d entries the feature index does not hold",
                        self.path, len(absent))
            self.delete(absent)
        return len(absent)

    def close(self) -> None:
        """Checkpoint (so the file alone holds every write: a build's output can seed a store)
        and release the writer lock."""
        with self._lock:
            if self._lock_fd >= 0:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:  # a reader holds an old snapshot; the WAL keeps the writes
                    log.warning("activation store %s: could not checkpoint at close", self.path)
                self._conn.close()
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def __enter__(self) -> "ActivationStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ActivationReader:
    """A read-only view for top-k queries, in any process; ``refresh`` follows the writer.
    ``top`` and ``count`` answer as of the last ``refresh``; ``row`` reads the file now."""

    def __init__(self, path: Path, conn, layers: Layers) -> None:
        self.path, self._conn, self.layers = path, conn, layers
        self._layout = Layout(layers)
        self._lock = threading.Lock()
        self._table = Table(self._layout)
        self._seq: int | None = None  # the last write applied; None: load everything

    @classmethod
    def open(cls, path: Path) -> "ActivationReader":
        """The store at ``path``, loaded; NotFound when there is no file."""
        if not path.is_file():
            raise NotFound(f"no activation store at {path}: the gallery build or the neighbours "
                           "endpoint writes it (see docs/inspect.md)")
        conn = connect(path, readonly=True)
        try:
            reader = cls(path, conn, read_layers(conn, path))
            reader.refresh()
        except BaseException:
            conn.close()
            raise
        return reader

    def refresh(self) -> None:
        """Apply the writes committed since the last refresh (puts, upserts, deletes), in one
        read snapshot; one indexed query when there are none. A reader behind the tombstones
        the writer trimmed reloads in full."""
        with self._lock, sql_errors(self.path, "read"):
            (seq,) = self._conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()
            if seq == self._seq:
                return
            self._conn.execute("BEGIN")
            try:
                self._apply()
            except BaseException:
                self._seq = None  # the table may be half updated: the next refresh reloads
                raise
            finally:
                self._conn.execute("COMMIT")

    def _apply(self) -> None:
        meta = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN ('seq', 'trimmed')"))
        after, table = self._seq, self._table
        if after is None or meta["trimmed"] > after:
            after, table = -1, Table(self._layout)
            table.reserve(self._conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])
        else:
            table.remove([i for (i,) in self._conn.execute("SELECT id FROM deletes WHERE seq > ?", (after,))])
        cursor, new = self._conn.execute("SELECT id, summary FROM rows WHERE seq > ?", (after,)), []
        while batch := cursor.fetchmany(_BATCH):
            new += table.upsert([i for i, _ in batch], self._layout.decode([b for _, b in batch], self.path))
        table.order(new)
        self._table, self._seq = table, meta["seq"]

    @property
    def nbytes(self) -> int:
        """Memory of the in-memory table (what a 1M-image store costs each inspect worker)."""
        return self._table.nbytes

    def count(self) -> int:
        """Entries as of the last refresh."""
        return len(self._table.slot)

    def top(self, layer: str, channel: int, k: int) -> list[tuple[str, float, int]]:
        """The exact top ``k`` (id, stored float16 maximum as float, flat argmax y * w + x) of
        ``channel`` of ``layer`` over every entry, largest first, ties by id ascending."""
        if layer not in self.layers:
            raise BadRequest(f"layer {layer!r} is not stored; the stored layers are {list(self.layers)}")
        size = self.layers[layer][0]
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < size:
            raise BadRequest(f"channel must be an integer in [0, {size}) for layer {layer!r}, got {channel!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise BadRequest(f"k must be a positive integer, got {k!r}")
        with self._lock:
            table = self._table
            used = len(table.ids)
            codes = table.codes[layer][channel, :used]
            slots = top_slots(codes, table.rank[:used], int(k))
            argmax = table.argmax[layer][channel]
            return [(table.ids[s], code_value(int(codes[s])), int(argmax[s])) for s in slots]

    def row(self, id: str) -> ActivationRow:
        """One entry, read from the file now (NotFound if it is not there, e.g. deleted since)."""
        with self._lock, sql_errors(self.path, "read"):
            found = self._conn.execute("SELECT label, metadata, info, summary, image FROM rows WHERE id = ?",
                                       (id,)).fetchone()
        if found is None:
            raise NotFound(f"no entry {id!r} in the activation store")
        label, metadata, info, summary, image = found
        columns = self._layout.decode([summary], self.path)
        layers = {n: LayerSummary(m[0].astype(np.float32), a[0].astype(np.int64)) for n, (m, a) in columns.items()}
        return ActivationRow(id, label, json.loads(metadata), json.loads(info), layers, image)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "ActivationReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
