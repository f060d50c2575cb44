"""Durable files for the embedded index: a write-ahead log, checksummed snapshots, one writer.

Layout of one index directory::

    LOCK                              flock'd by the single writer (its pid inside)
    snapshot-<seq>.csidx              the state after write <seq>: header, rows, FAISS index, CRC
    wal-<first seq>.log               writes after the snapshot, one CRC'd record each

A write is acknowledged after its log record is fsync'd. A snapshot is written to a temporary
file, fsync'd, renamed over, and the directory fsync'd; only then is a new log started and the
old files removed, so a crash at any point leaves a loadable snapshot plus the log after it.

Recovery rules (``read_log``): a record cut short at the end of the newest log, or whose CRC
fails and which ends exactly at the end of that file, is a torn write that was never
acknowledged: it is truncated with a warning. A bad record anywhere else, a gap in sequence
numbers, or a snapshot whose CRC fails is corruption: ``IndexCorrupt`` names the file and the
index is refused, never served with wrong ids.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import IndexCorrupt, IndexUnavailable

log = logging.getLogger(__name__)

SNAPSHOT_MAGIC = b"CSIDXSN1"
_RECORD_HEAD = struct.Struct("<II")  # payload length, crc32(payload)
_PAYLOAD_HEAD = struct.Struct("<QBI")  # seq, op, json length
_CHUNK = 16 << 20
OP_ADD, OP_DELETE = 1, 2


@dataclass(frozen=True)
class Record:
    """One logged write. ``vector``: float32 bytes for adds, empty for deletes."""

    seq: int
    op: int
    body: dict[str, Any]
    vector: bytes = b""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriterLock:
    """An exclusive ``flock`` on ``<dir>/LOCK``: one process writes an index. The kernel drops
    it when the holder dies, so a SIGKILLed worker never leaves a stale lock behind."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise IndexUnavailable(f"index {directory} is owned by another writer (pid {holder}); "
                                   "an index has exactly one writer") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


# -- snapshots ------------------------------------------------------------------------------

def snapshot_path(directory: Path, seq: int) -> Path:
    return directory / f"snapshot-{seq:020d}.csidx"


def _seq_of(path: Path) -> int:
    return int(path.stem.split("-")[1])


def snapshots(directory: Path) -> list[Path]:
    return sorted(directory.glob("snapshot-*.csidx"), key=_seq_of)


class _CrcWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.crc = handle, 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.handle.write(data)
        return len(data)


def write_snapshot(path: Path, header: dict[str, Any], rows: bytes,
                   write_index: Callable[[Callable[[bytes], int]], None]) -> None:
    """Atomically write ``path``: magic, header JSON, rows JSON, the index bytes, CRC32."""
    tmp = path.with_name(path.name + ".tmp")
    head = json.dumps(header).encode()
    with open(tmp, "wb") as handle:
        out = _CrcWriter(handle)
        out.write(SNAPSHOT_MAGIC + struct.pack("<I", len(head)) + head + struct.pack("<Q", len(rows)))
        out.write(rows)
        write_index(out.write)
        handle.write(struct.pack("<I", out.crc))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class _Bounded:
    """A reader that stops at ``end`` (the CRC trailer is not index bytes)."""

    def __init__(self, handle: BinaryIO, end: int) -> None:
        self.handle, self.end = handle, end

    def read(self, size: int) -> bytes:
        return self.handle.read(max(0, min(size, self.end - self.handle.tell())))


def read_header(path: Path) -> dict:
    """A snapshot's header alone (no checksum pass: ``read_snapshot`` checks when it loads)."""
    with open(path, "rb") as handle:
        if handle.read(len(SNAPSHOT_MAGIC)) != SNAPSHOT_MAGIC:
            raise IndexCorrupt(f"{path} is not a ConvScope index snapshot")
        (head_len,) = struct.unpack("<I", handle.read(4))
        return json.loads(handle.read(head_len))


def read_snapshot(path: Path, read_index: Callable[[Callable[[int], bytes]], Any]) -> tuple[dict, bytes, Any]:
    """(header, rows JSON bytes, index) of a snapshot whose CRC and layout check out."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        crc, remaining = 0, size - 4
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                break
            crc, remaining = zlib.crc32(chunk, crc), remaining - len(chunk)
        stored = handle.read(4)
        if size < len(SNAPSHOT_MAGIC) + 16 or len(stored) != 4 or struct.unpack("<I", stored)[0] != crc:
            raise IndexCorrupt(f"snapshot {path} fails its checksum: refusing to serve it. Restore the "
                               "index directory from a backup, or rebuild it with convscope-index")
        handle.seek(0)
        if handle.read(len(SNAPSHOT_MAGIC)) != SNAPSHOT_MAGIC:
            raise IndexCorrupt(f"{path} is not a ConvScope index snapshot")
        (head_len,) = struct.unpack("<I", handle.read(4))
        header = json.loads(handle.read(head_len))
        (rows_len,) = struct.unpack("<Q", handle.read(8))
        rows = handle.read(rows_len)
        index = read_index(_Bounded(handle, size - 4).read)
    return header, rows, index


# -- the write-ahead log ----------------------------------------------------------------------

def log_path(directory: Path, first_seq: int) -> Path:
    return directory / f"wal-{first_seq:020d}.log"


def logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"), key=_seq_of)


def encode(record: Record) -> bytes:
    body = json.dumps(record.body, separators=(",", ":")).encode()
    payload = _PAYLOAD_HEAD.pack(record.seq, record.op, len(body)) + body + record.vector
    return _RECORD_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> Record:
    seq, op, body_len = _PAYLOAD_HEAD.unpack_from(payload)
    start = _PAYLOAD_HEAD.size
    body = json.loads(payload[start:start + body_len])
    return Record(seq, op, body, payload[start + body_len:])


def _scan(path: Path, newest: bool) -> Iterator[Record]:
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        torn = len(data) - pos < _RECORD_HEAD.size
        if not torn:
            length, crc = _RECORD_HEAD.unpack_from(data, pos)
            end = pos + _RECORD_HEAD.size + length
            torn = end > len(data)
        if not torn and zlib.crc32(data[pos + _RECORD_HEAD.size:end]) != crc:
            torn = end == len(data)
            if not torn or not newest:
                raise IndexCorrupt(f"write-ahead log {path} has a bad record at byte {pos}: refusing to "
                                   "serve the index. Restore it from a backup, or rebuild it")
        if torn:
            if not newest:
                raise IndexCorrupt(f"write-ahead log {path} ends mid-record at byte {pos} but is not the newest log")
            log.warning("write-ahead log %s: dropping a torn, unacknowledged record at byte %d "
                        "(%d bytes); the index recovers everything before it", path, pos, len(data) - pos)
            with open(path, "r+b") as handle:
                handle.truncate(pos)
                os.fsync(handle.fileno())
            return
        yield _decode(data[pos + _RECORD_HEAD.size:end])
        pos = end


def read_log(directory: Path, after_seq: int) -> Iterator[Record]:
    """The logged writes after ``after_seq``, in order, checking that none is missing."""
    files = logs(directory)
    expected = after_seq + 1
    for i, path in enumerate(files):
        for record in _scan(path, newest=i == len(files) - 1):
            if record.seq < expected:
                continue  # already in the snapshot
            if record.seq != expected:
                raise IndexCorrupt(f"write-ahead log {path}: write {expected} is missing (found {record.seq})")
            expected += 1
            yield record


class WriteAheadLog:
    """Appends records to the newest log file; ``append`` returns once they are on disk."""

    def __init__(self, directory: Path, first_seq: int) -> None:
        existing = logs(directory)
        self.path = existing[-1] if existing else log_path(directory, first_seq)
        self._handle = open(self.path, "ab")
        if not existing:
            fsync_dir(directory)

    @property
    def size(self) -> int:
        return self._handle.tell()

    def append(self, records: list[Record]) -> None:
        """Group commit: one write and one fsync for the whole batch. On failure (a full disk)
        the partial write is cut off again, so the log stays a sequence of whole records."""
        start = self._handle.tell()
        try:
            self._handle.write(b"".join(encode(r) for r in records))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            try:
                self._handle.truncate(start)
                self._handle.seek(start)
                os.fsync(self._handle.fileno())
            except OSError:
                log.exception("could not cut a failed write off %s", self.path)
            raise IndexUnavailable(f"the index could not write its log ({exc.strerror or exc}); "
                                   "the write was not applied, earlier writes are intact") from exc

    def rotate(self, directory: Path, first_seq: int) -> None:
        """Start ``wal-<first_seq>.log`` (after a snapshot at ``first_seq - 1``); drop older logs."""
        old = logs(directory)
        self._handle.close()
        self.path = log_path(directory, first_seq)
        self._handle = open(self.path, "ab")
        fsync_dir(directory)
        for path in old:
            if path != self.path:
                path.unlink()
        fsync_dir(directory)

    def close(self) -> None:
        self._handle.close()
