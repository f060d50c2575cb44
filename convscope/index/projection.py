"""2-D projections of stored feature vectors: PCA, t-SNE and UMAP, a per-index-version cache,
and the scatter plot.

The methods are the libraries' own (scikit-learn ``PCA`` and ``TSNE``, umap-learn ``UMAP``),
seeded, on one thread, so the same call on the same machine gives the same coordinates.
Measured on the digits gallery (4,000 x 128) on 2 shared cores: PCA 0.1 s, t-SNE 10 s, UMAP
14 s (plus about 35 s once per worker for importing umap and numba's compilation); docs/neighbours.md.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import BadRequest

METHODS = ("pca", "tsne", "umap")
MIN_POINTS = 3
"""Fewer points have no 2-D layout worth the name (t-SNE needs perplexity < points)."""
TSNE_PERPLEXITY = 30.0
UMAP_NEIGHBOURS = 15


def _pca(vectors: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(vectors)


def _tsne(vectors: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    # sklearn refuses perplexity >= n; a third of the points keeps small subsets meaningful.
    perplexity = min(TSNE_PERPLEXITY, (len(vectors) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                n_jobs=1).fit_transform(vectors)


def _umap(vectors: np.ndarray, seed: int) -> np.ndarray:
    import warnings

    import umap  # noqa: PLC0415 - numba start-up costs seconds: only projection calls pay it

    with warnings.catch_warnings():  # "n_jobs overridden to 1 by setting random_state": wanted
        warnings.simplefilter("ignore", UserWarning)
        model = umap.UMAP(n_components=2, n_neighbors=min(UMAP_NEIGHBOURS, len(vectors) - 1),
                          random_state=seed, n_jobs=1, init="spectral" if len(vectors) > 16 else "random")
        return model.fit_transform(vectors)


PROJECTORS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"pca": _pca, "tsne": _tsne, "umap": _umap}


def project(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    """float32 [N, D] -> float64 [N, 2] coordinates by ``method`` (one of ``METHODS``)."""
    if method not in PROJECTORS:
        raise BadRequest(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if len(vectors) < MIN_POINTS:
        raise BadRequest(f"a projection needs at least {MIN_POINTS} points; this subset has {len(vectors)}")
    return np.asarray(PROJECTORS[method](np.asarray(vectors, np.float32), seed), np.float64)


@dataclass(frozen=True)
class Layout:
    """What the cache keeps: the coordinates of one projection of one index version."""

    ids: tuple[str, ...]
    labels: tuple[str | None, ...]
    coordinates: np.ndarray
    """float64 [N, 2]."""
    query: int | None = None
    """Row of the query image (subset=neighbours), else None."""


class LayoutCache:
    """Least-recently-used layouts of the current index version; a new version empties it.

    Not thread-safe on its own: the neighbours worker runs one batch at a time."""

    def __init__(self, size: int) -> None:
        self.size, self.version = size, None
        self._layouts: OrderedDict[Hashable, Layout] = OrderedDict()

    def get(self, version: int, key: Hashable) -> Layout | None:
        if version != self.version:
            self._layouts.clear()
            self.version = version
            return None
        layout = self._layouts.get(key)
        if layout is not None:
            self._layouts.move_to_end(key)
        return layout

    def put(self, version: int, key: Hashable, layout: Layout) -> None:
        if version != self.version:
            self._layouts.clear()
            self.version = version
        self._layouts[key] = layout
        self._layouts.move_to_end(key)
        while len(self._layouts) > self.size:
            self._layouts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._layouts)


# -- the scatter plot ---------------------------------------------------------------------------

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
           (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
           (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229))
"""Matplotlib's tab10 then the light half of tab20: 20 distinguishable colours."""
UNLABELLED = (60, 60, 60)
PLOT_SIDE, LEGEND_WIDTH, MARGIN = 560, 160, 16
MAX_LEGEND = 24


def _colours(labels: tuple[str | None, ...]) -> dict[str | None, tuple[int, int, int]]:
    """Label -> colour, labels in natural order (numbers as numbers); beyond 20 the colours repeat."""
    names = sorted({l for l in labels if l is not None}, key=lambda l: (not l.isdigit(), int(l) if l.isdigit() else 0, l))
    out: dict[str | None, tuple[int, int, int]] = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    out[None] = UNLABELLED
    return out


def scatter_png(layout: Layout, title: str) -> bytes:
    """An RGB PNG: one dot per point coloured by label, the query as a black ring, a legend."""
    colours = _colours(layout.labels)
    image = Image.new("RGB", (PLOT_SIDE + LEGEND_WIDTH, PLOT_SIDE), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    xy = layout.coordinates
    low, span = xy.min(axis=0), np.ptp(xy, axis=0)
    span[span == 0] = 1.0
    inner = PLOT_SIDE - 2 * MARGIN - 20
    pixels = MARGIN + (xy - low) / span * inner
    pixels[:, 1] = PLOT_SIDE - MARGIN - (pixels[:, 1] - MARGIN)  # y grows upwards, as on paper
    radius = 2 if len(xy) > 1000 else 3 if len(xy) > 200 else 5
    for (x, y), label in zip(pixels.tolist(), layout.labels):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colours[label])
    if layout.query is not None:
        x, y = pixels[layout.query]
        draw.ellipse((x - 9, y - 9, x + 9, y + 9), outline="black", width=3)
    draw.text((MARGIN, 2), title, fill="black", font=font)
    _legend(draw, font, colours, layout)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _legend(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, colours: dict, layout: Layout) -> None:
    entries = [(str(name), colour) for name, colour in colours.items() if name is not None]
    if None in layout.labels:
        entries.append(("(no label)", UNLABELLED))
    shown, rest = entries[:MAX_LEGEND], len(entries) - MAX_LEGEND
    left, top = PLOT_SIDE + 8, MARGIN + 10
    for row, (name, colour) in enumerate(shown):
        y = top + row * 20
        draw.ellipse((left, y + 3, left + 10, y + 13), fill=colour)
        draw.text((left + 16, y), name[:18], fill="black", font=font)
    if rest > 0:
        draw.text((left, top + len(shown) * 20), f"... {rest} more", fill="black", font=font)
    if layout.query is not None:
        y = top + (len(shown) + (rest > 0)) * 20 + 6
        draw.ellipse((left - 2, y + 1, left + 12, y + 15), outline="black", width=3)
        draw.text((left + 16, y), "query", fill="black", font=font)
