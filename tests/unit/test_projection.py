"""``op=project`` on ``<m>-neighbours``: the index's export and version on both backends, the
per-version cache, bad input, and what the projections mean on the digits gallery (t-SNE of the
feature vectors keeps the ten classes apart, better than t-SNE of the raw pixels)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.neighbors import KNeighborsClassifier

from convscope.build.digits import load_digits
from convscope.config import EngineConfig
from convscope.endpoints import build_endpoint
from convscope.endpoints import neighbours as neighbours_module
from convscope.errors import ServiceError
from convscope.index import Entry, open_index
from convscope.index.base import TooManyEntries
from convscope.index.faiss_index import snapshot_entries
from convscope.index.projection import project
from convscope.schemas import ProjectionResult
from convscope.spec import IndexSpec
from tests.conftest import gallery
from tests.imaging import held_out_digits
from tests.payloads import json_payload as _json
from tests.payloads import one as _one

PER_CLASS = 100


def knn_accuracy(points: np.ndarray, labels: np.ndarray) -> float:
    """A 5-NN classifier trained on every other point, scored on the rest (float in [0, 1])."""
    order = np.random.default_rng(0).permutation(len(points))
    train, test = order[::2], order[1::2]
    return KNeighborsClassifier(5).fit(points[train], labels[train]).score(points[test], labels[test])


@pytest.fixture(scope="module")
def digits_sample(store):
    """1,000 gallery digits (100 a class): feature vectors float32 [N, 128], raw pixels float32
    [N, 784] in [0, 1] of the same MNIST rows, and labels."""
    entries = sorted(snapshot_entries(gallery(store, "digits")), key=lambda e: e.id)
    chosen = [e for digit in range(10) for e in [e for e in entries if e.label == str(digit)][:PER_CLASS]]
    images, _ = load_digits()
    pixels = np.stack([images[e.metadata["row"]].reshape(-1) / 255.0 for e in chosen]).astype(np.float32)
    return np.stack([e.vector for e in chosen]), pixels, np.array([e.label for e in chosen])


def test_tsne_of_features_keeps_digits_apart_better_than_tsne_of_pixels(digits_sample):
    features, pixels, labels = digits_sample
    in_features = knn_accuracy(project(features, "tsne", 0), labels)
    in_pixels = knn_accuracy(project(pixels, "tsne", 0), labels)
    assert in_features >= 0.9, in_features
    assert in_features > in_pixels, (in_features, in_pixels)


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_a_seeded_projection_is_repeatable(digits_sample, method):
    features = digits_sample[0][::20]  # 50 points
    first, again = project(features, method, 3), project(features, method, 3)
    assert first.shape == (50, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)


# -- the FeatureIndex additions, on both backends -----------------------------------------------

@pytest.mark.parametrize("backend", ["faiss", "milvus"])
@pytest.mark.parametrize("type", ["flat", "hnsw"])
def test_export_reads_back_what_was_written_and_version_follows_writes(tmp_path, backend, type):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    with open_index(IndexSpec(backend=backend, type=type, metric="l2"), 8, tmp_path, "unit") as index:
        start = index.version()
        index.add([Entry(f"e{i:02d}", v, None if i % 5 == 0 else f"c{i % 3}") for i, v in enumerate(vectors)])
        after_add = index.version()
        everything = index.export()
        assert everything.ids == tuple(f"e{i:02d}" for i in range(30)) and everything.version == after_add
        np.testing.assert_allclose(everything.vectors, vectors, atol=1e-6)
        some = index.export(labels=["c1"])
        assert some.ids == tuple(f"e{i:02d}" for i in range(30) if i % 5 and i % 3 == 1)
        assert set(some.labels) == {"c1"}
        picked = index.export(ids=["e07", "e03", "missing"])
        assert picked.ids == ("e03", "e07")
        np.testing.assert_allclose(picked.vectors, vectors[[3, 7]], atol=1e-6)
        with pytest.raises(TooManyEntries):
            index.export(most=29)
        index.delete(["e03"])
        assert len({start, after_add, index.version()}) == 3
        assert "e03" not in index.export().ids


# -- the endpoint ------------------------------------------------------------------------------

@pytest.fixture()
def neighbours(digits_model, store, tmp_path):
    """digits-neighbours over a private copy of the built gallery."""
    def make(**config):
        index = open_index(digits_model.spec.index, digits_model.layers.feature_dim, tmp_path / "index",
                           "digits", seed=gallery(store, "digits"))
        made.append(index)
        return build_endpoint("neighbours", digits_model, EngineConfig(**config), index, None, tmp_path / "x")
    made: list = []
    yield make
    for index in made:
        index.close()


def test_the_whole_gallery_by_pca_with_a_plot(neighbours):
    result = _one(neighbours(), _json(op="project", plot=True))
    assert isinstance(result, ProjectionResult) and len(result.points) == 4000
    assert {p.label for p in result.points} == {str(d) for d in range(10)}
    assert not any(p.query for p in result.points)
    plot = Image.open(io.BytesIO(result.plot))
    assert plot.format == "PNG" and plot.size == (720, 560)
    document = result.to_dict()
    assert document["op"] == "project" and document["count"] == 4000 and "plot" in document
    assert set(document["points"][0]) == {"id", "label", "x", "y"}


def test_a_repeated_call_is_served_from_the_cache_until_a_write(neighbours, monkeypatch):
    calls = []
    real = neighbours_module.project
    monkeypatch.setattr(neighbours_module, "project", lambda *a: calls.append(a[1]) or real(*a))
    endpoint = neighbours()
    request = dict(op="project", subset="labels", labels=["3", "8"], method="pca")
    first = _one(endpoint, _json(**request))
    second = _one(endpoint, _json(**request))
    assert (first.cached, second.cached, calls) == (False, True, ["pca"])
    assert [p.x for p in first.points] == [p.x for p in second.points]
    _one(endpoint, _json(**{**request, "seed": 1}))  # another key: computed
    assert len(calls) == 2
    _one(endpoint, _json(op="add", id="unit/new", label="3", vector=[0.1] * 128))
    third = _one(endpoint, _json(**request))
    assert third.cached is False and len(calls) == 3 and third.version != first.version
    assert len(third.points) == len(first.points) + 1


def test_the_neighbours_of_a_query_image(neighbours):
    (digit, image), = [s for s in held_out_digits(per_class=1) if s[0] == 6]
    result = _one(neighbours(), _json(op="project", subset="neighbours", image=image, k=40, method="tsne"))
    assert len(result.points) == 41 and [p.id for p in result.points if p.query] == ["query"]
    assert sum(p.label == str(digit) for p in result.points) >= 30


@pytest.mark.parametrize("doc, words", [
    ({"method": "lda"}, "method must be one of pca, tsne, umap"),
    ({"k": 5}, "only with subset=neighbours"),
    ({"vector": [0.1] * 128}, "only with subset=neighbours"),
    ({"subset": "neighbours"}, "needs an image or a vector"),
    ({"subset": "labels"}, "takes labels (a list) with subset=labels"),
    ({"labels": ["1"]}, "takes labels (a list) with subset=labels"),
    ({"subset": "labels", "labels": {"a": 1}}, "labels must be a non-empty list"),
    ({"subset": "labels", "labels": 7}, "labels must be a non-empty list"),
    ({"subset": "labels", "labels": ["no-such-label"]}, "at least 3 points"),
    ({"subset": "everything"}, "subset must be one of"),
    ({"seed": -1}, "seed must be between"),
    ({"plot": "maybe"}, "plot"),
    ({"id": "x"}, "do not apply to op=project"),
])
def test_bad_projection_requests_get_a_400_that_says_why(neighbours, doc, words):
    outcome = _one(neighbours(), _json(op="project", **doc))
    assert isinstance(outcome, ServiceError) and outcome.status == 400 and words in outcome.message, outcome


def test_over_the_cap_is_a_400_naming_it_and_a_bad_item_fails_alone(neighbours):
    endpoint = neighbours(max_projection_points=500)
    over, fine, image_only = endpoint.handle([
        _json(op="project"), _json(op="project", subset="labels", labels=["0"]),
        _json(op="project", image=b"abc")])
    assert over.status == 400 and "max_projection_points (500)" in over.message and "4000" in over.message
    assert isinstance(fine, ProjectionResult) and len(fine.points) == 400
    assert image_only.status == 400


def test_the_typed_project_rpc_reaches_the_engine_and_back(neighbours):
    from convscope_client._proto import convscope_pb2 as pb

    from convscope.envelope import Payload
    from convscope_gateway.projection import project_inputs, project_response
    from convscope_gateway.typed import ROUTES

    assert ROUTES["Project"].endpoint == "neighbours"
    endpoint = neighbours()
    request = pb.ProjectRequest(model="digits", method=pb.PROJECTION_METHOD_PCA, subset=pb.PROJECTION_SUBSET_LABELS,
                                labels=["2", "5"], seed=4, plot=True)
    inputs = project_inputs(request)
    assert inputs == {"op": b"project", "method": b"pca", "subset": b"labels", "labels": b"2,5", "seed": b"4",
                      "plot": b"true"}
    result = _one(endpoint, Payload(inputs))
    message = project_response(result.to_dict())
    assert len(message.points) == 800 and {p.label for p in message.points} == {"2", "5"}
    assert message.method == "pca" and message.seed == 4 and message.plot_png.startswith(b"\x89PNG")
    (_, image), = held_out_digits(per_class=1)[:1]
    near = project_inputs(pb.ProjectRequest(model="digits", subset=pb.PROJECTION_SUBSET_NEIGHBOURS, k=5,
                                            probe=pb.Probe(image=pb.Image(data=image))))
    answer = project_response(_one(endpoint, Payload(near)).to_dict())
    assert len(answer.points) == 6 and [p.id for p in answer.points if p.query] == ["query"]
    wrong = _one(endpoint, Payload(project_inputs(pb.ProjectRequest(model="digits", k=5))))
    assert wrong.status == 400 and "only with subset=neighbours" in wrong.message


def test_the_client_call_over_rest_and_the_cli_writing_the_png(neighbours, tmp_path):
    from convscope_client import Projection, _calls, cli
    from convscope_client._convert import projection_from_json
    from convscope_client._rest import render

    path, image, params = render(_calls.project("digits", method="pca", subset="labels", labels=["0", "9"], plot=True))
    assert path == "/predictions/digits-neighbours" and image is None
    assert params == {"op": "project", "method": "pca", "subset": "labels", "labels": "0,9", "plot": "true"}
    result = projection_from_json(_one(neighbours(), _json(**params)).to_dict())
    assert isinstance(result, Projection) and len(result.points) == 800 and result.plot.startswith(b"\x89PNG")

    class Stub:
        def project(self, model, **given):
            assert given["plot"] is True and given["method"] == "pca"
            return result

    args = cli.parser().parse_args(["project", "digits", "--method", "pca", "--out", str(tmp_path / "p.png")])
    records = list(args.handler(Stub(), args))
    assert records[0].files == [tmp_path / "p.png"] and (tmp_path / "p.png").read_bytes() == result.plot
