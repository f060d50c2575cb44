"""Results that hold numpy arrays: equality by dtype, shape and values, read-only arrays from
the server's little-endian bytes, and writing a result's PNGs and arrays to files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


class ArrayEquality:
    """``==`` for dataclasses holding numpy arrays: arrays compare by dtype, shape and values
    (the generated ``__eq__`` would compare them element-wise and fail on truth-testing)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b))
    return a == b


def frozen_array(values: Any, dtype: npt.DTypeLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A read-only numpy array of ``dtype`` (little-endian for raw bytes), reshaped if asked."""
    array = (np.frombuffer(values, np.dtype(dtype).newbyteorder("<")).astype(dtype)
             if isinstance(values, bytes) else np.asarray(values, dtype))
    if shape is not None:
        array = array.reshape(shape)
    array.setflags(write=False)
    return array


def write_files(items: Iterable[tuple[Path, bytes | np.ndarray | None]]) -> list[Path]:
    """Write each present item (PNG bytes as they are, an array as ``.npy``); return the paths."""
    written = []
    for path, data in items:
        if data is None:
            continue
        if isinstance(data, np.ndarray):
            np.save(path, data)
        else:
            path.write_bytes(data)
        written.append(path)
    return written
