"""``make store``: build the built-in models and archive every recipe in ``model_store/``.

Weights are made once (trained or converted into ``model_store/build/``) and reused; so are the
built-in galleries (``build/galleries/<m>.csidx``: the 4,000 training digits, four views of each
scikit-image photo), which seed ``<m>-neighbours``. Archives are rewritten when their spec,
weights, gallery or the engine's handler are newer.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Callable

from ..index import storage
from ..index.activations import STORE_FILE
from ..spec import load_spec, read_spec_document
from . import digits, efficientnet, gallery
from .archive import HANDLER, archive


def _build_digits(spec_path: Path, weights: Path) -> None:
    report = digits.train(load_spec(spec_path), weights)  # weights need not exist yet
    if report["held_out_accuracy"] < 0.97:
        raise SystemExit(f"digits: held-out accuracy {report['held_out_accuracy']:.4f} < 0.97")


def _build_efficientnet(spec_path: Path, weights: Path) -> None:
    doc = read_spec_document(spec_path)
    efficientnet.convert(weights, (spec_path.parent / doc["labels"]))


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "digits": _build_digits,
    "efficientnet_lite0": _build_efficientnet,
}


def _digits_gallery(model, build: Path) -> list[gallery.Item]:
    return gallery.digit_items(model, "train")  # the 4,000 training digits


def _photo_gallery(model, build: Path) -> list[gallery.Item]:
    from ..config import EngineConfig

    return gallery.folder_items(gallery.write_photos(build / "photos"), model, EngineConfig())


GALLERIES = {"digits": _digits_gallery, "efficientnet_lite0": _photo_gallery}


def build_gallery(spec_path: Path, weights: Path, build: Path) -> tuple[Path, Path | None]:
    """Index the model's built-in gallery, with its top-activation store; returns the snapshot
    file and the store file (None when the spec stores no layer) that seed the archive."""
    name = read_spec_document(spec_path)["name"]
    seed, directory = build / "galleries" / f"{name}.csidx", build / "galleries" / name
    activations = build / "galleries" / f"{name}-activations.sqlite"
    if not _stale(seed, weights, spec_path) and activations.exists():
        return seed, activations
    shutil.rmtree(directory, ignore_errors=True)
    model, index, store = gallery.open_for(spec_path, directory, weights)
    with index:
        items = GALLERIES[name](model, build)
        print(f"{name}: gallery {gallery.ingest(index, model, items, store=store)}")
        index.checkpoint()
        if store is not None:
            store.close()  # checkpoints the store into its one file
    shutil.copyfile(storage.snapshots(directory)[-1], seed)
    if store is None:
        activations.unlink(missing_ok=True)
        return seed, None
    shutil.copyfile(directory / STORE_FILE, activations)
    return seed, activations

ARCHIVER = Path(__file__).with_name("archive.py")


def _stale(target: Path, *inputs: Path) -> bool:
    return not target.exists() or any(p.stat().st_mtime > target.stat().st_mtime for p in inputs)


def build_store(store: Path, force: bool = False) -> list[Path]:
    archives = []
    for spec_path in sorted(store.glob("*.toml")):
        doc = read_spec_document(spec_path)
        weights = (spec_path.parent / doc["weights"]).resolve()
        if (force or not weights.exists()) and doc["name"] in BUILDERS:
            BUILDERS[doc["name"]](spec_path, weights)
        seed, activations = build_gallery(spec_path, weights, weights.parent) if doc["name"] in GALLERIES \
            else (None, None)
        mar = store / f"{doc['name']}.mar"
        # archive.py itself is an input: a change of what an archive holds (card.json) rebuilds it.
        seeds = [p for p in (seed, activations) if p is not None]
        if force or _stale(mar, spec_path, weights, HANDLER, ARCHIVER, *seeds):
            archive(spec_path, store, gallery=seed, activations=activations)
        else:
            print(f"{doc['name']}: {mar} is up to date")
        archives.append(mar)
    return archives


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument("--force", action="store_true", help="rebuild weights and archives")
    args = parser.parse_args(argv)
    build_store(args.store, args.force)


if __name__ == "__main__":
    main()
