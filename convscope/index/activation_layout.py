"""The files of the top-activation store (``activations.py``): its SQLite schema, the summary
blob of one entry, the checks a write goes through, and the atomic creation of a new store.

Schema (version 1)::

    meta(key, value)       version; layers, JSON [[name, C, h, w], ...] in blob order; seq, the
                           sequence number of the last write; trimmed, the newest seq whose
                           delete is no longer listed in ``deletes``
    rows(id PRIMARY KEY, seq, label, metadata, info, summary, image)
                           one per entry; seq of its last put (indexed: readers follow it)
    deletes(seq PRIMARY KEY, id)
                           tombstones, the change feed of deletes (the writer trims the oldest)

``summary``: for each layer in ``layers`` order, the C channel maxima as float16 little-endian,
then their C flat positions ``y * w + x`` as uint16 (h*w <= 65536) or uint32 little-endian: 6 or
10 bytes a channel. ``image`` is the last column, so a scan of summaries never reads it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import quote

import numpy as np

from ..errors import BadRequest, IndexCorrupt, IndexUnavailable, SpecError
from .base import check_id, check_label, check_metadata
from .storage import fsync_dir

VERSION = 1
FLOAT16_MAX = 65504.0
Layers = dict[str, tuple[int, int, int]]

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE rows (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, label TEXT, metadata TEXT NOT NULL,
                   info TEXT NOT NULL, summary BLOB NOT NULL, image BLOB);
CREATE INDEX rows_by_seq ON rows (seq);
CREATE TABLE deletes (seq INTEGER PRIMARY KEY, id TEXT NOT NULL);
"""


class Layout:
    """Where each layer's maxima and positions lie in a row's summary blob."""

    def __init__(self, layers: Mapping[str, tuple[int, int, int]]) -> None:
        self.layers: Layers = dict(layers)
        self.spans: dict[str, tuple[int, int, np.dtype]] = {}  # name -> (start byte, C, argmax dtype)
        start = 0
        for name, (c, h, w) in self.layers.items():
            dtype = np.dtype("<u2" if h * w <= 65536 else "<u4")
            self.spans[name] = (start, c, dtype)
            start += c * (2 + dtype.itemsize)
        self.size = start

    def encode(self, id: str, layers: Any) -> bytes:
        """Check ``layers`` {name: LayerSummary} against the store's and pack them."""
        if not isinstance(layers, Mapping) or set(layers) != set(self.spans):
            got = sorted(layers) if isinstance(layers, Mapping) else type(layers).__name__
            raise BadRequest(f"entry {id!r} has layers {got}; the store holds {sorted(self.spans)}")
        return b"".join(self._encode_one(id, name, layers[name]) for name in self.spans)

    def _encode_one(self, id: str, name: str, summary: Any) -> bytes:
        _, c, dtype = self.spans[name]
        _, h, w = self.layers[name]
        try:
            maxima = np.asarray(summary.maxima, np.float32)
            argmax = np.asarray(summary.argmax)
        except (AttributeError, TypeError, ValueError):
            raise BadRequest(f"layer {name!r} of entry {id!r} must be a LayerSummary of numbers") from None
        if maxima.shape != (c,) or argmax.shape != (c,):
            raise BadRequest(f"layer {name!r} of entry {id!r} has {maxima.size} maxima and {argmax.size} "
                             f"positions; the layer has {c} channels")
        if np.isnan(maxima).any():
            raise BadRequest(f"layer {name!r} of entry {id!r} has NaN maxima")
        if argmax.dtype.kind not in "iu" or (argmax.size and (argmax.min() < 0 or argmax.max() >= h * w)):
            raise BadRequest(f"positions of layer {name!r} of entry {id!r} must be integers in [0, {h * w}) "
                             f"(flat y * w + x in its {h}x{w} map)")
        # Clip into float16's range; adding +0.0 turns -0.0 into +0.0 so equal values order as ties.
        stored = (np.clip(maxima, -FLOAT16_MAX, FLOAT16_MAX) + np.float32(0.0)).astype("<f2")
        return stored.tobytes() + argmax.astype(dtype).tobytes()

    def decode(self, blobs: list[bytes], path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """n summary blobs -> {layer: (maxima float16 [n, C], argmax uint16|uint32 [n, C])}."""
        data = np.frombuffer(b"".join(blobs), np.uint8)
        if data.size != len(blobs) * self.size:
            raise IndexCorrupt(f"activation store {path} holds a summary of the wrong size "
                               f"(expected {self.size} bytes a row): rebuild it with convscope-index")
        data = data.reshape(len(blobs), self.size)
        out = {}
        for name, (start, c, dtype) in self.spans.items():
            mid = start + 2 * c
            out[name] = (np.ascontiguousarray(data[:, start:mid]).view("<f2"),
                         np.ascontiguousarray(data[:, mid:mid + c * dtype.itemsize]).view(dtype))
        return out


def to_json(value: Any, what: str, id: str) -> str:
    """A JSON object as compact text; BadRequest when ``value`` is not one."""
    if not isinstance(value, dict):
        raise BadRequest(f"{what} of entry {id!r} must be a JSON object")
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{what} of entry {id!r} must be plain JSON (no NaN): {exc}") from exc


def prepare(row: Any, layout: Layout) -> tuple:
    """One ActivationRow, checked whole -> (id, label, metadata JSON, info JSON, summary, image)."""
    check_id(row.id)
    check_label(row.label)
    check_metadata(row.metadata)
    info = to_json(row.info, "info", row.id)
    image = row.image
    if image is not None and not isinstance(image, (bytes, bytearray, memoryview)):
        raise BadRequest(f"the image of entry {row.id!r} must be bytes or None")
    summary = layout.encode(row.id, row.layers)
    return (row.id, row.label, to_json(row.metadata, "metadata", row.id), info, summary,
            None if image is None else bytes(image))


def check_layers(layers: Any) -> Layers:
    """The spec's {name: (C, h, w)} with positive integer sizes; SpecError otherwise."""
    if not isinstance(layers, Mapping) or not layers:
        raise SpecError("an activation store needs at least one layer {name: (C, h, w)}")
    out: Layers = {}
    for name, shape in layers.items():
        sizes = tuple(shape) if isinstance(shape, (tuple, list)) else ()
        if not isinstance(name, str) or not name or len(sizes) != 3 \
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise SpecError(f"stored layer {name!r}: expected a name and (C, h, w) positive integers, got {shape!r}")
        out[name] = sizes  # type: ignore[assignment]
    return out


def layer_difference(found: Layers, wanted: Layers) -> str:
    """What differs between two layer sets, for humans: 'features is (32, 14, 14) in the store,
    (64, 7, 7) in the spec; blocks.3 is only in the spec'."""
    parts = [f"{n} is {found[n]} in the store, {wanted[n]} in the spec"
             for n in wanted if n in found and tuple(found[n]) != tuple(wanted[n])]
    parts += [f"{n} is only in the spec" for n in wanted if n not in found]
    parts += [f"{n} is only in the store" for n in found if n not in wanted]
    return "; ".join(parts)


@contextmanager
def sql_errors(path: Path, doing: str) -> Iterator[None]:
    """SQLite failures as service errors: I/O, a full disk or a lock -> IndexUnavailable (503);
    a damaged file -> IndexCorrupt. Misuse (a closed store) stays a ProgrammingError."""
    try:
        yield
    except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise
    except sqlite3.OperationalError as exc:
        raise IndexUnavailable(f"the activation store {path} could not {doing} ({exc}); the write was "
                               "not applied, earlier writes are intact") from exc
    except sqlite3.DatabaseError as exc:
        raise IndexCorrupt(f"activation store {path} is damaged ({exc}): rebuild it with convscope-index") from exc


def connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit). The writer's uses WAL and
    synchronous=FULL, so a COMMIT has reached the disk when it returns."""
    uri = f"file:{quote(str(path.resolve()))}?mode={'ro' if readonly else 'rwc'}"
    with sql_errors(path, "open"):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        if not readonly:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                conn.close()
                raise IndexUnavailable(f"the activation store {path} cannot use SQLite's WAL mode here (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
    return conn


def read_layers(conn: sqlite3.Connection, path: Path) -> Layers:
    """The layers a store holds, checking that it is a store of this version."""
    with sql_errors(path, "read its header"):
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            raise IndexCorrupt(f"{path} is not a ConvScope activation store ({exc})") from exc
    if meta.get("version") != VERSION or "layers" not in meta:
        raise IndexCorrupt(f"{path} is not a version-{VERSION} ConvScope activation store "
                           f"(version {meta.get('version')!r}): rebuild it with convscope-index")
    return {name: (c, h, w) for name, c, h, w in json.loads(meta["layers"])}


def create(path: Path, layers: Layers, seed: Path | None) -> None:
    """Make the store at ``path``, atomically (tmp + fsync + rename + fsync of the directory): a
    copy of ``seed`` checked against ``layers`` (SpecError on a difference), or an empty one."""
    tmp = path.with_name(path.name + ".tmp")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    try:
        if seed is not None:
            if not seed.is_file():
                raise SpecError(f"the activation store seed {seed} does not exist")
            wal = Path(f"{seed}-wal")  # a copy of the main file alone would miss these writes
            if wal.exists() and wal.stat().st_size:
                raise SpecError(f"the activation store seed {seed} has writes not yet in the file "
                                f"({wal.name}): close its writer before copying it")
            shutil.copyfile(seed, tmp)
        conn = connect(tmp, readonly=False)
        try:
            if seed is None:
                _write_schema(conn, tmp, layers)
            found = read_layers(conn, seed or tmp)
        finally:
            conn.close()  # the last connection checkpoints and removes tmp's WAL
        if found != layers:
            raise SpecError(f"the activation store seed {seed} holds other layers than the spec: "
                            f"{layer_difference(found, layers)}; rebuild it with convscope-index")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _write_schema(conn: sqlite3.Connection, path: Path, layers: Layers) -> None:
    spec = json.dumps([[name, *shape] for name, shape in layers.items()])
    with sql_errors(path, "create its tables"):
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, SCHEMA.split(";")):
            conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                         [("version", VERSION), ("layers", spec), ("seq", 0), ("trimmed", 0)])
        conn.execute("COMMIT")


def lock_writer(path: Path) -> int:
    """An exclusive ``flock`` on ``<store>.lock`` (the kernel drops it when the holder dies):
    one process writes a store. Returns the descriptor; closing it releases the lock."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise IndexUnavailable(f"activation store {path} is owned by another writer (pid {holder}); "
                               "a store has exactly one writer") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
