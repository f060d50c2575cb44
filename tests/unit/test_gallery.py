"""``convscope-index``: folder trees, the built-in digits, resuming after an interruption, bad
files, and the CLI itself; and the neighbours endpoint over the Milvus backend."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from convscope.build.gallery import Item, digit_items, folder_items, ingest
from convscope.config import EngineConfig
from convscope.endpoints import build_endpoint
from convscope.envelope import Payload
from convscope.index import open_index
from convscope.spec import IndexSpec
from tests.imaging import held_out_digits, photo

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def photo_tree(tmp_path) -> Path:
    root = tmp_path / "photos"
    for label, names in {"cats": ("chelsea", "cat"), "drinks": ("coffee",)}.items():
        (root / label).mkdir(parents=True)
        for name in names:
            Image.fromarray(photo(name)).save(root / label / f"{name}.jpg")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "notes.txt").write_text("not an image, not indexed")
    (root / "loose.png").write_bytes((root / "cats" / "cat.jpg").read_bytes())
    return root


def test_a_folder_tree_is_indexed_with_labels_from_sub_folders(photo_tree, lite0, tmp_path):
    items = folder_items(photo_tree, lite0, EngineConfig())
    assert [i.id for i in items] == ["cats/broken.png", "cats/cat.jpg", "cats/chelsea.jpg", "drinks/coffee.jpg",
                                     "loose.png"]
    assert [i.label for i in items] == ["cats", "cats", "cats", "drinks", None]
    with open_index(IndexSpec(), 1280, tmp_path / "index", "lite0") as index:
        counts = ingest(index, lite0, items, batch_size=2, progress=False)
        assert counts == {"added": 4, "skipped": 0, "failed": 1}  # the broken file is reported
        hit = index.search(lite0_vector(lite0, photo_tree / "drinks" / "coffee.jpg"), 1)[0][0]
        assert hit.id == "drinks/coffee.jpg" and hit.metadata == {"source": "drinks/coffee.jpg"}


def lite0_vector(model, path: Path):
    from convscope.endpoints.classify import embed
    from convscope.preprocess import decode_image, prepare_input

    tensor = prepare_input(decode_image(path.read_bytes(), EngineConfig()).image, model.spec.input)[0]
    return embed(model, tensor[None]).numpy()


def test_an_interrupted_ingest_resumes_where_it_stopped(digits_model, tmp_path):
    items = digit_items(digits_model, "held_out")[:300]

    def interrupted(item: Item, at: str) -> Item:
        def load():
            if item.id == at:
                raise KeyboardInterrupt  # Ctrl-C in the middle of a batch
            return item.load()
        return replace(item, load=load)

    with open_index(IndexSpec(), 128, tmp_path, "digits") as index:
        with pytest.raises(KeyboardInterrupt):
            ingest(index, digits_model, [interrupted(i, items[150].id) for i in items], batch_size=64,
                   progress=False)
        done = index.count()
        assert done == 128  # two whole batches were committed before the interruption
    with open_index(IndexSpec(), 128, tmp_path, "digits") as index:
        counts = ingest(index, digits_model, items, batch_size=64, progress=False)
        assert counts == {"added": 300 - done, "skipped": done, "failed": 0}
        assert index.count() == 300 and all(index.contains([i.id for i in items]))


def test_the_cli_ingests_a_folder_and_reports_stats(photo_tree, tmp_path):
    command = [sys.executable, "-m", "convscope.build.gallery", "ingest", "--quiet",
               "--spec", str(REPO / "model_store" / "efficientnet_lite0.toml"),
               "--index", str(tmp_path / "index"), "--folder", str(photo_tree)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "'added': 4" in first.stdout and "'failed': 1" in first.stdout and "broken.png" in first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "'added': 0, 'skipped': 4" in again.stdout and "'count': 4" in again.stdout
    with open_index(IndexSpec(), 1280, tmp_path / "index", "efficientnet_lite0"):  # a server holds it
        locked = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert locked.returncode == 1 and "owned by another writer" in locked.stderr
    assert "Traceback" not in locked.stderr


def test_the_neighbours_endpoint_over_milvus(digits_model, tmp_path):
    spec = IndexSpec(backend="milvus")
    with open_index(spec, 128, tmp_path, "digits") as index:
        endpoint = build_endpoint("neighbours", digits_model, EngineConfig(), index)
        samples = held_out_digits(per_class=1)
        adds = [Payload({"body": json.dumps({"op": "add", "id": f"d{digit}", "label": str(digit),
                                             "image": base64.b64encode(png).decode()}).encode()},
                        {"body": "application/json"}) for digit, png in samples]
        assert all(outcome.created for outcome in endpoint.handle(adds))
        stats = endpoint.handle([Payload({"body": b'{"op": "stats"}'}, {"body": "application/json"})])[0]
        assert stats.stats["backend"] == "milvus" and stats.stats["count"] == 10
        found = endpoint.handle([Payload({"body": png}, {"body": "image/png"}) for _, png in samples])
        assert [r.neighbours[0].id for r in found] == [f"d{digit}" for digit, _ in samples]
        assert all(r.neighbours[0].distance < 1e-4 for r in found)
