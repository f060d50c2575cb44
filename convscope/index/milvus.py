"""The Milvus backend: a Milvus server by URI and token, or an embedded milvus-lite directory.

One collection per model: ``id`` VARCHAR primary key, ``vector`` FLOAT_VECTOR [dim], ``label``
VARCHAR nullable, ``metadata`` JSON. The spec maps to Milvus as cosine -> COSINE,
l2 -> L2 and flat -> FLAT, ivf -> IVF_FLAT, hnsw -> HNSW. Milvus scores (cosine similarity,
squared L2) become ConvScope distances through ``FeatureIndex.to_distance``. Reads use
``Strong`` consistency, so a search sees every acknowledged write, as with FAISS.

Durability (``add`` and ``delete`` return once durable), and why ``flush`` is never called:

* Milvus server: a write is acknowledged once it is committed to Milvus' write-ahead log (the
  streaming node's WAL on Woodpecker, Pulsar or Kafka), which is replayed after a crash (Milvus
  docs, "Data Processing"). ``flush`` only seals segments into object storage, which Milvus does
  by itself; per write it would make tiny segments. Not tested here: no server on this machine.
* milvus-lite: ``upsert``/``delete`` append to an Arrow WAL file and flush it to the OS before
  they return. Tested: writes, replacements and deletes survive a SIGKILL of the process right
  after the call returns, with or without ``flush``. An OS crash or power cut may lose the
  latest writes: milvus-lite does not fsync its WAL per write (nor its segments on ``flush``),
  so ``flush`` would add nothing but small segments.

A write batch is validated whole, then sent in chunks of ``WRITE_BATCH`` rows; a crash part
way through a very large batch leaves a prefix written (each chunk is an upsert, so retrying
the batch is safe). Every pymilvus or gRPC failure becomes ``IndexUnavailable`` (503).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from ..errors import BadRequest, IndexUnavailable, InternalError, NotFound, SpecError
from ..spec import IndexSpec
from . import base
from .base import Entry, FeatureIndex, IndexStats, Neighbour, Stored, TooManyEntries

METRICS = {"cosine": "COSINE", "l2": "L2"}
INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}
DEFAULT_NLIST = 128
"""IVF lists when the spec says 0 (auto): Milvus builds IVF per segment, not on the whole gallery."""
DEFAULT_NPROBE = 16
"""IVF lists probed when the spec says 0: Milvus has no calibration (FaissIndex calibrates)."""
MAX_TOPK = 16384
"""Milvus refuses a search ``limit`` above this."""
WRITE_BATCH = 1000
"""Rows per upsert call, and ids per ``id in [...]`` expression: well under gRPC's message limit."""
CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 60.0
SEED_PROPERTY = "convscope.seed"
"""Collection property: "started" while a seed loads, "done" after; a seed loads at most once."""
SERVER_SCHEMES = ("http", "https", "tcp")
OUTPUT_FIELDS = ["label", "metadata"]
FIELD_TYPES = {"id": DataType.VARCHAR, "vector": DataType.FLOAT_VECTOR, "label": DataType.VARCHAR,
               "metadata": DataType.JSON}

# milvus-lite runs one in-process server per directory and pymilvus stops it only at exit; it
# holds the directory's lock, so the last close() in this process stops it (another process, or
# a reopen here, then reads the files afresh).
_lite_users: dict[str, int] = {}


class MilvusIndex(FeatureIndex):
    """A ``FeatureIndex`` kept in one Milvus collection; see the module docstring."""

    backend = "milvus"

    def __init__(self, spec: IndexSpec, dim: int, client: MilvusClient, collection: str,
                 uri: str, lite_path: Path | None) -> None:
        super().__init__(dim, spec.metric, spec.type)
        self._spec, self._client, self.collection = spec, client, collection
        self.uri, self._lite_path = redact_uri(uri), lite_path
        self._writes = 0  # version(): this process is the collection's one writer

    @classmethod
    def open(cls, spec: IndexSpec, dim: int, directory: Path, name: str,
             seed: Path | None = None, token: str | None = None) -> MilvusIndex:
        """Connect, create or check the collection (``SpecError`` on a dim or metric mismatch),
        load it, and load ``seed`` (a FAISS snapshot file) into a collection never seeded."""
        uri, lite_path = resolve_uri(spec.uri, Path(directory))
        client = _connect(uri, lite_path, token)
        index = cls(spec, dim, client, collection_name(spec.collection or name), uri, lite_path)
        try:
            with index._guard("open the collection"):
                index._prepare_collection()
            if seed is not None:
                index._seed(Path(seed))
        except BaseException:
            index.close()
            raise
        return index

    # -- the contract -------------------------------------------------------------------------

    def add(self, entries: Sequence[Entry]) -> list[bool]:
        vectors = self.check_entries(entries)
        ids = [e.id for e in entries]
        existing = self._existing(ids)
        self._upsert(entries, vectors)
        self._writes += 1
        return [i not in existing for i in ids]

    def delete(self, ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(base.check_id(i) for i in ids))
        existing = self._existing(wanted)
        missing = [i for i in wanted if i not in existing]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise NotFound(f"no index entry with id {missing[0]!r}{more}; nothing was deleted")
        for chunk in _chunks(wanted, WRITE_BATCH):
            with self._guard("delete"):
                self._live.delete(self.collection, filter=_id_filter(chunk), timeout=CALL_TIMEOUT_S)
        self._writes += 1

    def search(self, queries: np.ndarray, k: int) -> list[list[Neighbour]]:
        """float32 [Q, D] -> for each query up to ``k`` neighbours, nearest first, in one call.

        Milvus returns at most the stored count, so ``k`` needs clamping only to its own limit.
        """
        prepared = self.check_queries(queries, k)
        if len(prepared) == 0:
            return []
        limit = min(k, MAX_TOPK)
        with self._guard("search"):
            hits = self._live.search(
                self.collection, data=prepared, anns_field="vector", limit=limit,
                output_fields=OUTPUT_FIELDS, search_params=self._search_params(limit),
                consistency_level="Strong", timeout=CALL_TIMEOUT_S)
        return [self._neighbours(row) for row in hits]

    def contains(self, ids: Sequence[str]) -> list[bool]:
        existing = self._existing([base.check_id(i) for i in ids])
        return [i in existing for i in ids]

    def count(self) -> int:
        with self._guard("count entries"):
            rows = self._live.query(self.collection, filter="", output_fields=["count(*)"],
                                    consistency_level="Strong", timeout=CALL_TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def version(self) -> int:
        return self._writes

    def export(self, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None,
               most: int | None = None) -> Stored:
        if ids is not None:
            filters = [_id_filter(chunk) for chunk in _chunks(sorted(set(ids)), WRITE_BATCH)]
        else:
            filters = [_in_filter("label", sorted(set(labels))) if labels is not None else ""]
        found = sum(self._count(f) for f in filters)
        if most is not None and found > most:
            raise TooManyEntries(found, most)
        rows = []
        for expression in filters:
            with self._guard("read entries"):
                iterator = self._live.query_iterator(self.collection, batch_size=WRITE_BATCH, filter=expression,
                                                     output_fields=["id", "vector", "label"],
                                                     consistency_level="Strong", timeout=CALL_TIMEOUT_S)
                try:
                    while batch := iterator.next():
                        rows.extend(batch)
                finally:
                    iterator.close()
        rows.sort(key=lambda row: str(row["id"]))
        vectors = np.array([row["vector"] for row in rows], np.float32).reshape(len(rows), self.dim)
        return Stored(tuple(str(r["id"]) for r in rows), vectors, tuple(r.get("label") for r in rows), self._writes)

    def _count(self, expression: str) -> int:
        with self._guard("count entries"):
            rows = self._live.query(self.collection, filter=expression, output_fields=["count(*)"],
                                    consistency_level="Strong", timeout=CALL_TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def describe(self) -> IndexStats:
        return IndexStats(self.count(), self.dim, self.metric, self.index_type, self.backend,
                          {"uri": self.uri, "collection": self.collection})

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
        finally:
            if self._lite_path is not None:
                _release_lite(self._lite_path)

    # -- collection set-up --------------------------------------------------------------------

    def _prepare_collection(self) -> None:
        if not self._live.has_collection(self.collection, timeout=CALL_TIMEOUT_S):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            # A Milvus server counts VARCHAR lengths in UTF-8 bytes; ConvScope limits characters.
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=4 * base.MAX_ID_CHARS)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("label", DataType.VARCHAR, max_length=4 * base.MAX_LABEL_CHARS, nullable=True)
            schema.add_field("metadata", DataType.JSON)
            self._live.create_collection(self.collection, schema=schema, consistency_level="Strong",
                                         timeout=CALL_TIMEOUT_S)
            # An empty collection's index is ready at once: not waiting skips pymilvus' 0.5 s poll
            # (and AllocTimestamp, an RPC milvus-lite lacks).
            self._live.create_index(self.collection, self._index_params(), sync=False, timeout=CALL_TIMEOUT_S)
        else:
            self._check_schema(self._live.describe_collection(self.collection, timeout=CALL_TIMEOUT_S))
            self._check_vector_index()
        # A server keeps a collection released after a restart; search and query need it loaded.
        self._live.load_collection(self.collection, timeout=CALL_TIMEOUT_S)

    def _check_schema(self, description: dict[str, Any]) -> None:
        """Refuse a collection not made by this backend, or made for vectors of another size."""
        fields = {f["name"]: f for f in description.get("fields", [])}
        where = f"Milvus collection {self.collection!r} at {self.uri}"
        if {name: fields.get(name, {}).get("type") for name in FIELD_TYPES} != FIELD_TYPES:
            raise SpecError(f"{where} does not have ConvScope's fields {sorted(FIELD_TYPES)}")
        stored_dim = int(fields["vector"].get("params", {}).get("dim", -1))
        if stored_dim != self.dim:
            raise SpecError(f"{where} holds vectors of {stored_dim} values but the model's "
                            f"features have {self.dim}; use another collection or drop this one")

    def _check_vector_index(self) -> None:
        names = self._live.list_indexes(self.collection, field_name="vector")
        if not names:
            self._live.create_index(self.collection, self._index_params(), timeout=CALL_TIMEOUT_S)
            return
        stored = self._live.describe_index(self.collection, names[0], timeout=CALL_TIMEOUT_S)
        wanted = METRICS[self.metric]
        if str(stored.get("metric_type", "")).upper() != wanted:
            raise SpecError(f"Milvus collection {self.collection!r} at {self.uri} is indexed with "
                            f"metric {stored.get('metric_type')} but the spec says {self.metric} "
                            f"({wanted}); distances would be wrong")

    def _index_params(self) -> Any:
        spec = self._spec
        build: dict[str, int] = {}
        if spec.type == "hnsw":
            build = {"M": spec.hnsw_m, "efConstruction": spec.ef_construction}
        elif spec.type == "ivf":
            build = {"nlist": spec.ivf_nlist or DEFAULT_NLIST}
        params = MilvusClient.prepare_index_params()
        params.add_index(field_name="vector", index_name="vector", index_type=INDEX_TYPES[spec.type],
                         metric_type=METRICS[self.metric], params=build)
        return params

    def _search_params(self, limit: int) -> dict[str, Any]:
        spec, params = self._spec, {}
        if spec.type == "hnsw":
            params = {"ef": max(spec.ef_search, limit)}  # Milvus refuses ef below the limit
        elif spec.type == "ivf":
            params = {"nprobe": min(spec.ivf_nprobe or DEFAULT_NPROBE, spec.ivf_nlist or DEFAULT_NLIST)}
        return {"metric_type": METRICS[self.metric], "params": params}

    # -- seeding ------------------------------------------------------------------------------

    def _seed(self, path: Path) -> None:
        """Load snapshot ``path`` once: into a new, empty collection, or to finish a seed that a
        crash interrupted. A gallery emptied by deletes is not seeded again."""
        with self._guard("read collection properties"):
            described = self._live.describe_collection(self.collection, timeout=CALL_TIMEOUT_S)
        state = described.get("properties", {}).get(SEED_PROPERTY)
        if state == "done" or (state != "started" and self.count() > 0):
            return
        # Lazily: only a seeded Milvus index reads FAISS files.
        from .faiss_index import snapshot_entries

        with self._guard("mark the seed started"):
            self._live.alter_collection_properties(self.collection, {SEED_PROPERTY: "started"})
        for batch in _chunks(snapshot_entries(path), WRITE_BATCH):
            try:
                vectors = self.check_entries(batch)
            except BadRequest as exc:
                raise SpecError(f"seed {path}: {exc.message}") from exc
            self._upsert(batch, vectors)
        with self._guard("mark the seed done"):
            self._live.alter_collection_properties(self.collection, {SEED_PROPERTY: "done"})

    # -- helpers ------------------------------------------------------------------------------

    @property
    def _live(self) -> MilvusClient:
        if self._client is None:
            raise InternalError(f"the Milvus index of collection {self.collection!r} is closed")
        return self._client

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """pymilvus and gRPC failures -> ``IndexUnavailable`` naming the action, server and collection."""
        try:
            yield
        except (MilvusException, grpc.RpcError) as exc:
            detail = getattr(exc, "message", "") or str(exc)
            raise IndexUnavailable(f"Milvus at {self.uri} could not {action} "
                                   f"(collection {self.collection!r}): {detail}") from exc

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids, WRITE_BATCH):
            with self._guard("look up ids"):
                rows = self._live.query(self.collection, filter=_id_filter(chunk), output_fields=["id"],
                                        consistency_level="Strong", timeout=CALL_TIMEOUT_S)
            found.update(str(row["id"]) for row in rows)
        return found

    def _upsert(self, entries: Sequence[Entry], vectors: np.ndarray) -> None:
        """Write validated ``entries`` with their prepared vectors float32 [N, D]."""
        rows = [{"id": e.id, "vector": v, "label": e.label, "metadata": e.metadata}
                for e, v in zip(entries, vectors)]
        for chunk in _chunks(rows, WRITE_BATCH):
            with self._guard("write"):
                self._live.upsert(self.collection, chunk, timeout=CALL_TIMEOUT_S)

    def _neighbours(self, hits: Sequence[Any]) -> list[Neighbour]:
        distances = self.to_distance(np.array([h["distance"] for h in hits], dtype=np.float64))
        return [Neighbour(str(h["id"]), float(d), h["entity"].get("label"), h["entity"].get("metadata") or {})
                for h, d in zip(hits, distances)]


def resolve_uri(uri: str, directory: Path) -> tuple[str, Path | None]:
    """The URI to connect to, and the milvus-lite directory (None for a server).

    Empty: ``directory/milvus.db``; a relative ``.db`` path resolves inside ``directory``.
    """
    if not uri:
        path = directory / "milvus.db"
    elif urlsplit(uri).scheme.lower() in SERVER_SCHEMES:
        return uri, None
    elif uri.endswith(".db"):
        path = Path(uri) if Path(uri).is_absolute() else directory / uri
    else:
        raise SpecError(f"index.uri must be http(s)://host:port or a path ending in .db, got {redact_uri(uri)!r}")
    return str(path.resolve()), path.resolve()


def collection_name(name: str) -> str:
    """Milvus allows letters, digits and underscores, not starting with a digit, 255 at most."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if cleaned[:1].isdigit():
        cleaned = f"_{cleaned}"
    if not cleaned or len(cleaned) > 255:
        raise SpecError(f"cannot make a Milvus collection name of {name!r}")
    return cleaned


def redact_uri(uri: str) -> str:
    """``uri`` without the password of its user info (``http://user:pw@h:1`` -> ``http://user@h:1``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def _connect(uri: str, lite_path: Path | None, token: str | None) -> MilvusClient:
    if lite_path is not None:
        lite_path.parent.mkdir(parents=True, exist_ok=True)
        _lite_users[str(lite_path)] = _lite_users.get(str(lite_path), 0) + 1
    try:
        return MilvusClient(uri=uri, token=token or "", timeout=CONNECT_TIMEOUT_S)
    except (MilvusException, grpc.RpcError) as exc:
        hint = ""
        if lite_path is not None:
            _release_lite(lite_path)
            hint = " (does another process hold its LOCK? an index has one writer)"
        detail = getattr(exc, "message", "") or str(exc)
        raise IndexUnavailable(f"cannot connect to Milvus at {redact_uri(uri)}{hint}: {detail}") from exc


def _release_lite(path: Path) -> None:
    users = _lite_users.get(str(path), 0) - 1
    if users > 0:
        _lite_users[str(path)] = users
        return
    _lite_users.pop(str(path), None)
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(path))


def _id_filter(ids: Sequence[str]) -> str:
    return _in_filter("id", ids)


def _in_filter(field: str, values: Sequence[str]) -> str:
    # Milvus string literals take backslash escapes; pymilvus' own ``ids=`` quotes nothing, so an
    # id holding a quote would break (or widen) the expression.
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return f"{field} in [{', '.join(quoted)}]"


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
