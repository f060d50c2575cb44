"""MilvusIndex against a real milvus-lite directory in ``tmp_path``: the FeatureIndex contract,
distances against exact numpy search, refusal of mismatched collections, and durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import BadRequest, IndexUnavailable, NotFound, SpecError
from convscope.index import Entry, open_index
from convscope.index.milvus import MilvusIndex, collection_name, redact_uri, resolve_uri
from convscope.spec import IndexSpec

DIM = 16
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gallery() -> np.ndarray:
    """float32 [500, 16], fixed seed."""
    return np.random.default_rng(0).normal(size=(500, DIM)).astype(np.float32)


def entries(vectors: np.ndarray, prefix: str = "img") -> list[Entry]:
    """Every third label is null; metadata carries the row number."""
    return [Entry(f"{prefix}-{i}", v, None if i % 3 == 0 else f"class-{i % 10}", {"row": i})
            for i, v in enumerate(vectors)]


def open_milvus(directory: Path, metric: str = "cosine", type: str = "flat", dim: int = DIM,
                **spec: object) -> MilvusIndex:
    return MilvusIndex.open(IndexSpec(backend="milvus", type=type, metric=metric, **spec),
                            dim, directory, "digits")


def exact(queries: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """float64 [Q, N] ConvScope distances: 1 - cos, or the Euclidean distance."""
    q, v = queries.astype(np.float64), vectors.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return 1.0 - q @ v.T
    return np.sqrt(((q[:, None, :] - v[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize(("metric", "type"), [("cosine", "flat"), ("l2", "hnsw"), ("cosine", "ivf")])
def test_every_vector_finds_itself_first_and_survives_reopen(tmp_path, gallery, metric, type):
    with open_milvus(tmp_path, metric, type) as index:
        assert index.add(entries(gallery)) == [True] * len(gallery)
        first = index.search(gallery, 3)
    assert [hits[0].id for hits in first] == [f"img-{i}" for i in range(len(gallery))]
    assert max(hits[0].distance for hits in first) < 1e-4
    with open_milvus(tmp_path, metric, type) as index:
        assert index.count() == len(gallery)
        again = index.search(gallery, 3)
    assert [hits[0].id for hits in again] == [hits[0].id for hits in first]
    if type == "flat":  # exact search answers the same after a reopen, order and distances
        assert [[n.id for n in h] for h in again] == [[n.id for n in h] for h in first]
        np.testing.assert_allclose([[n.distance for n in h] for h in again],
                                   [[n.distance for n in h] for h in first], atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_distances_match_exact_numpy_search(tmp_path, gallery, metric):
    queries = np.random.default_rng(1).normal(size=(20, DIM)).astype(np.float32)
    with open_milvus(tmp_path, metric) as index:
        index.add(entries(gallery))
        results = index.search(queries, 10)
    truth = exact(queries, gallery, metric)
    for row, hits in zip(truth, results):
        order = np.argsort(row)[:10]
        assert [n.id for n in hits] == [f"img-{i}" for i in order]
        np.testing.assert_allclose([n.distance for n in hits], row[order], atol=1e-4)


def test_upsert_replaces_and_reports_created_false(tmp_path, gallery):
    with open_milvus(tmp_path, "l2") as index:
        index.add(entries(gallery[:3]))
        replaced = Entry("img-1", gallery[100], "new", {"v": 2})
        assert index.add([replaced, Entry("img-9", gallery[9])]) == [False, True]
        assert index.count() == 4
        hit = index.search(gallery[100], 1)[0][0]
        assert (hit.id, hit.label, hit.metadata) == ("img-1", "new", {"v": 2})
        assert hit.distance < 1e-4
        assert index.search(gallery[1], 1)[0][0].id != "img-1"  # the old vector is gone


def test_delete_and_unknown_id_deletes_nothing(tmp_path, gallery):
    with open_milvus(tmp_path) as index:
        index.add(entries(gallery[:5]))
        index.delete(["img-0"])
        assert index.contains(["img-0", "img-1"]) == [False, True]
        with pytest.raises(NotFound, match="no-such-id"):
            index.delete(["img-1", "no-such-id"])
        assert index.count() == 4 and index.contains(["img-1"]) == [True]


def test_k_is_clamped_and_an_empty_index_returns_nothing(tmp_path, gallery):
    with open_milvus(tmp_path, "l2") as index:
        assert index.search(gallery[:3], 5) == [[], [], []]
        index.add(entries(gallery[:4]))
        assert [len(hits) for hits in index.search(gallery[:2], 50)] == [4, 4]
        hits = index.search(gallery[0], 50)[0]
        assert [n.distance for n in hits] == sorted(n.distance for n in hits)


def test_bad_input_is_refused_whole(tmp_path, gallery):
    with open_milvus(tmp_path) as index:
        bad_batches = [
            [Entry("a", gallery[0][:8]), Entry("b", gallery[1][:8])],          # wrong dim
            [Entry("a", gallery[0]), Entry("b", np.full(DIM, np.nan))],        # NaN
            [Entry("a", gallery[0]), Entry("b", np.zeros(DIM))],               # no direction
            [Entry("a", gallery[0]), Entry("a", gallery[1])],                  # id twice
        ]
        for batch in bad_batches:
            with pytest.raises(BadRequest):
                index.add(batch)
        assert index.count() == 0
        for queries, k in [(gallery[:2, :8], 3), (np.zeros((1, DIM)), 3), (gallery[:1], 0)]:
            with pytest.raises(BadRequest):
                index.search(queries, k)


def test_labels_metadata_and_awkward_ids_round_trip(tmp_path, gallery):
    metadata = {"source": "scan", "box": [1, 2.5, None], "nested": {"ok": True}}
    awkward = ['quote"d', "single'd", "back\\slash", "ünïcode id", "x] or id != [y"]
    with open_milvus(tmp_path) as index:
        index.add([Entry(key, gallery[i], None, metadata) for i, key in enumerate(awkward)])
        hit = index.search(gallery[0], 1)[0][0]
        assert (hit.id, hit.label, hit.metadata) == ('quote"d', None, metadata)
        assert index.contains(awkward + ["quote"]) == [True] * len(awkward) + [False]
        index.delete(["x] or id != [y"])  # a quoted literal: it must not widen to a filter
        assert index.count() == len(awkward) - 1


@pytest.mark.parametrize(("change", "words"), [({"dim": 8}, ["8", "16"]),
                                               ({"metric": "l2"}, ["COSINE", "l2"])])
def test_reopening_a_mismatched_collection_is_refused(tmp_path, gallery, change, words):
    with open_milvus(tmp_path) as index:
        index.add(entries(gallery[:2]))
    with pytest.raises(SpecError) as raised:
        open_milvus(tmp_path, **change)
    assert all(word in raised.value.message for word in words)
    with open_milvus(tmp_path) as index:  # the refusal left the lite server free for a reopen
        assert index.count() == 2


def test_a_collection_not_made_by_convscope_is_refused(tmp_path):
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    path = str((tmp_path / "milvus.db").resolve())
    client = MilvusClient(path)
    client.create_collection("digits", dimension=DIM)  # an INT64 "id" and a dynamic schema
    client.close()
    server_manager_instance.release_server(path)
    with pytest.raises(SpecError, match="ConvScope's fields"):
        open_milvus(tmp_path)


def test_unreachable_server_is_index_unavailable(tmp_path):
    with pytest.raises(IndexUnavailable, match="127.0.0.1:1"):
        open_milvus(tmp_path, uri="http://127.0.0.1:1")


def test_names_uris_and_describe(tmp_path, gallery):
    assert collection_name("efficientnet_lite0") == "efficientnet_lite0"
    assert collection_name("resnet-50.v2") == "resnet_50_v2"
    assert collection_name("3d-net") == "_3d_net"
    assert redact_uri("https://bob:s3cret@milvus.example:19530") == "https://bob@milvus.example:19530"
    assert resolve_uri("http://milvus.example:19530", tmp_path) == ("http://milvus.example:19530", None)
    assert resolve_uri("", tmp_path)[1] == (tmp_path / "milvus.db").resolve()
    assert resolve_uri("g/gallery.db", tmp_path)[1] == (tmp_path / "g" / "gallery.db").resolve()
    with pytest.raises(SpecError):
        resolve_uri("milvus.example:19530", tmp_path)
    spec = IndexSpec(backend="milvus", collection="gallery-v2")
    with open_index(spec, DIM, tmp_path, "digits") as index:
        index.add(entries(gallery[:7]))
        stats = index.describe().to_dict()
    assert stats == {"count": 7, "dim": DIM, "metric": "cosine", "index_type": "flat", "backend": "milvus",
                     "uri": str((tmp_path / "milvus.db").resolve()), "collection": "gallery_v2"}


CRASH = """
import os, signal, sys
import numpy as np
from pathlib import Path
from convscope.index import Entry
from convscope.index.milvus import MilvusIndex
from convscope.spec import IndexSpec
index = MilvusIndex.open(IndexSpec(backend="milvus"), 16, Path(sys.argv[1]), "digits")
vectors = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
index.add([Entry(f"img-{i}", v, "kept") for i, v in enumerate(vectors)])
index.delete(["img-0"])
os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit: what was acknowledged must be there
"""


def test_acknowledged_writes_survive_sigkill(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], env=env, check=False,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    with open_milvus(tmp_path) as index:
        assert index.count() == 49
        assert index.contains(["img-0", "img-1", "img-49"]) == [False, True, True]


def test_seed_loads_once_from_a_faiss_snapshot(tmp_path):
    """Last, and its imports lazy: it needs the FAISS backend's snapshot files."""
    from convscope.index import storage
    from convscope.index.faiss_index import FaissIndex

    gallery = np.random.default_rng(2).normal(size=(1200, DIM)).astype(np.float32)
    faiss_dir = tmp_path / "faiss"
    with FaissIndex.open(IndexSpec(metric="l2"), DIM, faiss_dir) as built:
        built.add(entries(gallery))  # more than one seeding batch
        built.checkpoint()
    seed = storage.snapshots(faiss_dir)[-1]
    directory = tmp_path / "milvus"
    with MilvusIndex.open(IndexSpec(backend="milvus", metric="l2"), DIM, directory, "digits", seed=seed) as index:
        assert index.count() == 1200
        hit = index.search(gallery[1000], 1)[0][0]
        assert (hit.id, hit.label, hit.metadata) == ("img-1000", "class-0", {"row": 1000})
        index.delete([f"img-{i}" for i in range(1200)])
    with MilvusIndex.open(IndexSpec(backend="milvus", metric="l2"), DIM, directory, "digits", seed=seed) as index:
        assert index.count() == 0  # an emptied gallery is not seeded again
