"""Where a tensor's spatial axes are, tracked through reshapes and permutes, so that a receptive
field survives a permute to NHWC and back, or [B, H, W, C] flattened to [BHW, C] around the
matmul of an ``nn.Linear`` (ConvNeXt). Used by ``convscope.inspect.receptive``.
"""

from __future__ import annotations

from math import prod

Layout = tuple[tuple[tuple, ...], ...]
"""Per dim, the sub-axes (label, size) it is the row-major merge of; label "h", "w" or None
(size-1 unlabelled axes are dropped)."""
H, W = "h", "w"


def anon(n: int) -> tuple:
    return ((None, n),) if n != 1 else ()


def labelled(axes: tuple) -> bool:
    return any(label for label, _ in axes)


def nchw(shape) -> Layout:  # [..., H, W] with unlabelled leading dims
    return tuple(anon(n) for n in shape[:-2]) + (((H, shape[-2]),), ((W, shape[-1]),))


def spatial_hw(layout: Layout | None) -> tuple[int, int] | None:
    """(H, W) when h and w are exactly the last two dims (as convolution and pooling need)."""
    if layout is None or len(layout) < 3 or any(labelled(axes) for axes in layout[:-2]):
        return None
    h, w = layout[-2], layout[-1]
    ok = len(h) == len(w) == 1 and (h[0][0], w[0][0]) == (H, W)
    return (h[0][1], w[0][1]) if ok else None


def relabel(layout: Layout | None, shape) -> Layout | None:
    """The layout of an output of `shape` that keeps every position of its input (element-wise
    with broadcasting, cat or split along an unlabelled dim): labelled dims keep their size."""
    if layout is None or len(layout) > len(shape):
        return None
    layout = ((),) * (len(shape) - len(layout)) + layout
    if any(labelled(axes) and prod(s for _, s in axes) != n for axes, n in zip(layout, shape)):
        return None  # a spatial dim broadcast, sliced or concatenated
    return tuple(axes if labelled(axes) else anon(n) for axes, n in zip(layout, shape))


def reshape(layout: Layout | None, shape) -> Layout | None:
    """The layout after a row-major reshape (view, flatten, squeeze) to `shape`: sub-axes are
    regrouped in order; an unlabelled one may be split, a labelled one may not."""
    axes, out = [a for dim in layout or () for a in dim], []
    for n in shape if layout is not None else ():
        dim, size = [], 1
        while size < n and axes:
            label, k = axes.pop(0)
            if size * k > n:  # split an unlabelled axis: [B, C] -> [B, g, C / g]
                if label or n % size or k % (n // size):
                    return None
                axes.insert(0, (None, k // (n // size)))
                k = n // size
            dim.append((label, k))
            size *= k
        if size != n:
            return None
        if n == 1 and axes and axes[0][1] == 1:
            dim.append(axes.pop(0))  # the h or w of a 1x1 map
        out.append(tuple(dim))
    return None if axes or layout is None else tuple(out)
