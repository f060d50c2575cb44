"""The pictures and figures of docs/inspect.md's "What the built-in models show": the built-in
models through ``<m>-inspect`` in-process, over a private copy of the built galleries and their
top-activation stores (as tests/conftest.py builds them), every request the JSON a client sends.

    .venv/bin/python benchmarks/inspect_pictures.py [--out docs/images/inspect]    (make pictures)

Writes six PNGs into ``--out`` and prints the measured figures (benchmarks/inspect_meaning.py,
asserted by tests/unit/test_inspect_meaning.py). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import inspect_meaning as meaning  # noqa: E402
from benchmarks.inspect_meaning import ask  # noqa: E402
from convscope.config import EngineConfig  # noqa: E402
from convscope.endpoints import build_endpoint  # noqa: E402
from convscope.index import open_index  # noqa: E402
from convscope.index.activations import STORE_FILE  # noqa: E402
from convscope.inspect.examples import open_model_store  # noqa: E402
from convscope.inspect.grid import coloured, unit_range  # noqa: E402
from convscope.models import load_model  # noqa: E402
from convscope.spec import load_spec  # noqa: E402

STORE = REPO / "model_store"
GALLERIES = STORE / "build" / "galleries"
CAPTION_LINE, GAP, INK, PAPER = 13, 6, (20, 20, 20), (255, 255, 255)


def open_endpoints(root: Path) -> dict:
    """{"<m>-inspect", "<m>-neighbours": endpoint} for both built-in models, their index and
    store copied from the built gallery into ``root`` (the copy is what tests/conftest.py uses)."""
    built = {}
    for name in ("digits", "efficientnet_lite0"):
        model, directory = load_model(load_spec(STORE / f"{name}.toml")), root / name
        index = open_index(model.spec.index, model.layers.feature_dim, directory, name,
                           seed=GALLERIES / f"{name}.csidx")
        store = open_model_store(model, directory, index, seed=GALLERIES / f"{name}-activations.sqlite")
        for kind in ("inspect", "neighbours"):
            built[f"{name}-{kind}"] = build_endpoint(kind, model, EngineConfig(), index, store, directory / STORE_FILE)
    return built


# --- montage ---------------------------------------------------------------------------------

@cache
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(12)


def fitted(text: str, width: int, draw: ImageDraw.ImageDraw) -> str:
    """``text``, its middle cut (``..``) until it fits ``width`` pixels."""
    while len(text) > 4 and draw.textlength(text, font=_font()) > width:
        middle = len(text) // 2
        text = text[:middle - 2] + ".." + text[middle + 1:]
    return text


def tile(image: Image.Image, side: int, nearest: bool) -> Image.Image:
    """``image`` scaled to fit a ``side`` square (nearest: integer factor, crisp pixels), centred on white."""
    if nearest:
        factor = max(1, side // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    else:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (side, side), PAPER)
    square.paste(image.convert("RGB"), ((side - image.width) // 2, (side - image.height) // 2))
    return square


def montage(rows: list[list[tuple[Image.Image, list[str]]]], side: int, titles: list[list[str]] | None = None,
            title_px: int = 0) -> Image.Image:
    """Rows of (square tile ``side`` px, caption lines below it); an optional title column."""
    lines = max(len(caption) for row in rows for _, caption in row)
    cell_w, cell_h = side + GAP, side + lines * CAPTION_LINE + 2 * GAP
    columns = max(len(row) for row in rows)
    canvas = Image.new("RGB", (title_px + columns * cell_w + GAP, len(rows) * cell_h + GAP), PAPER)
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = GAP + r * cell_h
        for n, line in enumerate(titles[r] if titles else []):
            draw.text((GAP, y + side // 3 + n * CAPTION_LINE), fitted(line, title_px - GAP, draw),
                      fill=INK, font=_font())
        for c, (image, caption) in enumerate(row):
            x = title_px + GAP + c * cell_w
            canvas.paste(image, (x, y))
            for n, line in enumerate(caption):
                draw.text((x, y + side + 2 + n * CAPTION_LINE), fitted(line, side, draw), fill=INK, font=_font())
    return canvas


def save(image: Image.Image | bytes, path: Path, palette: bool = False) -> None:
    """A PNG; ``palette``: 256 colours (photos: a quarter of the size, still faithful at this scale)."""
    if isinstance(image, bytes):  # the endpoint's own PNG, as it answered
        path.write_bytes(image)
    else:
        if palette:
            image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        image.save(path, "PNG", optimize=True)
    print(f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size // 1024} KB)")


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=90)
    return buffer.getvalue()


# --- the pictures ----------------------------------------------------------------------------

def feature_maps_picture(inspect, image: bytes, layer: str, side: int) -> Image.Image:
    """The image, then its top 16 channels of ``layer`` (op=feature_maps, output=raw: the layer's
    own resolution, stretched to the image's aspect as the maps align with it), each in its own
    range through the engine's viridis."""
    result = ask(inspect, image, op="feature_maps", layer=layer, top=16, output=["raw"])
    raw = np.frombuffer(result.raw, "<f2").reshape(len(result.channels), *result.shape[1:]).astype(np.float32)
    picture = Image.open(io.BytesIO(image))
    shape = (side, round(side * picture.height / picture.width))
    tiles = [(tile(picture, side, nearest=max(picture.size) <= side // 2), ["input", layer])]
    for stats, rgb in zip(result.channels, coloured(unit_range(raw))):
        cells = Image.fromarray(rgb).resize(shape, Image.Resampling.NEAREST)
        tiles.append((tile(cells, side, nearest=False), [f"#{stats.channel}", f"max {stats.max:.2f}"]))
    return montage([tiles[i:i + 6] for i in range(0, len(tiles), 6)], side)


def top_examples_picture(inspect, layer: str, channels: list[int], k: int, photo: dict[str, str],
                         side: int, nearest: bool) -> Image.Image:
    """A row per channel: its top-k distinct gallery examples' patches (op=top_examples,
    patches=true), each captioned with its id, label and activation."""
    rows, titles = [], []
    for channel in channels:
        examples = meaning.distinct_top(inspect, layer, channel, k, photo, patches=True)
        labels = [photo[e.id] for e in examples]
        common = max(set(labels), key=labels.count)
        titles.append([f"{layer} #{channel}", f"{labels.count(common)}/{k}: {common}"])
        short = [e.id.removeprefix(f"{inspect.model.spec.name}/").removesuffix(".png") for e in examples]
        rows.append([(tile(Image.open(io.BytesIO(e.patch)), side, nearest), [name, f"{e.label}  {e.activation:.2f}"])
                     for e, name in zip(examples, short)])
    return montage(rows, side, titles, title_px=120)


def digits_pictures(inspect, ids: list[str], out: Path) -> None:
    from convscope.build.digits import load_digits, split

    save(ask(inspect, op="filters", layer="features.0.0").grid, out / "digits-filters.png")
    images, labels = load_digits()
    row = int(split(labels)[1][0])  # the first held-out digit: one the model never trained on
    digit = encoded(Image.fromarray(images[row]), "PNG")
    save(feature_maps_picture(inspect, digit, "features.0", 84), out / "digits-feature-maps.png")
    reader = inspect.reader()
    channels = meaning.spread_channels(meaning.gallery_maxima(inspect, ids, meaning.DIGITS_DEEP), 4)
    label = {i: reader.row(i).label for i in ids}
    save(top_examples_picture(inspect, meaning.DIGITS_DEEP, channels, 9, label, 70, nearest=True),
         out / "digits-top-examples.png")


def photo_pictures(inspect, ids: list[str], out: Path) -> None:
    from skimage import data

    save(ask(inspect, op="filters", layer="conv_stem").grid, out / "efficientnet_lite0-filters.png")
    chelsea = encoded(Image.fromarray(data.chelsea()), "JPEG")
    save(feature_maps_picture(inspect, chelsea, meaning.PHOTO_LAYER, 84), out / "efficientnet_lite0-feature-maps.png")
    picture = top_examples_picture(inspect, meaning.PHOTO_LAYER, meaning.photo_channels(inspect, ids), 6,
                                   meaning.photo_of(inspect, ids), 96, nearest=False)
    save(picture, out / "efficientnet_lite0-top-examples.png", palette=True)


# --- the figures -----------------------------------------------------------------------------

def print_figures(built: dict) -> None:
    d_inspect, d_ids = built["digits-inspect"], built["digits-neighbours"].store.ids()
    p_inspect, p_ids = built["efficientnet_lite0-inspect"], built["efficientnet_lite0-neighbours"].store.ids()
    print(meaning.digits_purity(d_inspect, d_ids).line("digits features, top 9", 5))
    filters = meaning.filter_meaning(d_inspect)
    for stat in ("selectivity_step", "selectivity_bar", "dc_share"):
        low, high = filters.band(stat)
        median = {which: np.median(getattr(filters, which)[stat]) for which in ("trained", "initial", "random")}
        print(f"digits features.0.0 {stat}: median trained {median['trained']:.2f}, at its init "
              f"{median['initial']:.2f}, Kaiming 3x3 {median['random']:.2f} (median of 32 random: 98% in "
              f"{low:.2f}-{high:.2f})")
    cosine, change = filters.init_cosine, filters.trained["dc_share"] - filters.initial["dc_share"]
    print(f"digits features.0.0 cosine with its own initial weights: median {np.median(cosine):.3f}, "
          f"min {cosine.min():.3f}; DC share lower than at init in {(change < 0).sum()} of {len(change)} filters")
    for layer in ("features.0", "features.2"):
        trained, random = meaning.block_meaning(d_inspect, layer)
        print(f"digits {layer} orientation index (strokes), median over channels: trained {trained:.2f}; "
              f"{len(random)} random inits {np.median(random):.2f} (max {max(random):.2f})")
    capped = (meaning.gallery_maxima(p_inspect, p_ids, meaning.PHOTO_LAYER).max(axis=0) >= meaning.RELU6_CAP).sum()
    print(f"efficientnet_lite0 bn2: {capped} of 1280 channels reach the ReLU6 cap on some gallery image")
    chosen = meaning.photo_channels(p_inspect, p_ids)
    print(meaning.photo_purity(p_inspect, p_ids, chosen).line(f"efficientnet_lite0 bn2 {chosen}, top 6", 3))
    uncapped = meaning.photo_channels(p_inspect, p_ids, None)
    print(meaning.photo_purity(p_inspect, p_ids, uncapped).line("efficientnet_lite0 bn2 uncapped channels, top 6", 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "inspect")
    parser.add_argument("--no-pictures", action="store_true", help="print the figures only")
    args = parser.parse_args()
    root, built = Path(tempfile.mkdtemp(prefix="inspect-pictures-")), {}
    try:
        built = open_endpoints(root)
        if not args.no_pictures:
            args.out.mkdir(parents=True, exist_ok=True)
            digits_pictures(built["digits-inspect"], built["digits-neighbours"].store.ids(), args.out)
            photo_pictures(built["efficientnet_lite0-inspect"], built["efficientnet_lite0-neighbours"].store.ids(),
                           args.out)
        print_figures(built)
    finally:
        for name, endpoint in built.items():
            if name.endswith("-neighbours"):
                endpoint.index.close()
                endpoint.store.close()
        shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
