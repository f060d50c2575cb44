"""A top-activation reader's in-memory copy of the store (``activations.py``) and its top-k.

Per layer, uint16 order codes of the float16 maxima (codes compare like the values; 0 marks a
free slot) and the positions, as [C, capacity] arrays: one channel is one contiguous row, and
``top_slots`` finds the k-th largest code with a histogram (no sort), then breaks ties by id with
an int64 rank per slot that sorts like the ids, so a channel where a million entries tie (a dead
channel, all zeros) still answers in milliseconds.
"""

from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np

from .activation_layout import Layout

_GAP = 1 << 32  # rank spacing after a renumbering; a new id takes its neighbours' midpoint
_RANK_LIMIT = 1 << 62


def order_codes(maxima: np.ndarray) -> np.ndarray:
    """float16 [...] -> uint16 codes that compare like the values (never 0 for a number)."""
    bits = maxima.view(np.uint16)
    return np.where(bits >= 0x8000, ~bits, bits | 0x8000).astype(np.uint16)


def code_value(code: int) -> float:
    """The float16 value an order code stands for, as a float."""
    bits = code & 0x7FFF if code >= 0x8000 else ~code & 0xFFFF
    return float(np.array(bits, np.uint16).view(np.float16))


def top_slots(codes: np.ndarray, rank: np.ndarray, k: int) -> np.ndarray:
    """uint16 codes [n] (0 = free slot), int64 id ranks [n] -> the slots of the (at most) k
    largest codes, largest first, ties to the smaller rank. A histogram finds the k-th code."""
    counts = np.bincount(codes, minlength=1 << 16)
    counts[0] = 0
    at_or_above = np.cumsum(counts[::-1])  # [j]: how many codes are >= 65535 - j
    k = min(k, int(at_or_above[-1]))
    if k == 0:
        return np.zeros(0, np.int64)
    kth = (1 << 16) - 1 - int(np.searchsorted(at_or_above, k))
    candidates = np.flatnonzero(codes >= kth)
    above = candidates[codes[candidates] > kth]
    tied = candidates[codes[candidates] == kth]
    need = k - above.size  # >= 1: fewer than k codes are above the k-th
    if tied.size > need:
        tied = tied[np.argpartition(rank[tied], need - 1)[:need]]
    chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((rank[chosen], ~codes[chosen]))]


def scatter(target: np.ndarray, slots: np.ndarray, values: np.ndarray) -> None:
    """``target[:, slots] = values.T`` for target [C, capacity], values [n, C], written run by
    run of consecutive slots: a fancy-indexed column write is some 50 times slower."""
    order = np.argsort(slots, kind="stable")
    slots, values = slots[order], values[order]
    breaks = np.flatnonzero(np.diff(slots) != 1) + 1
    for lo, hi in zip([0, *breaks.tolist()], [*breaks.tolist(), slots.size]):
        target[:, slots[lo]:slots[hi - 1] + 1] = values[lo:hi].T


class Table:
    """A reader's copy: per layer codes uint16 [C, capacity] and argmax [C, capacity], a slot
    (column) per entry, freed slots reused; ``rank`` int64 [capacity] sorts slots like their ids."""

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (values, positions and ranks), capacity included."""
        return sum(a.nbytes for a in (*self.codes.values(), *self.argmax.values(), self.rank))

    def __init__(self, layout: Layout) -> None:
        self.codes = {n: np.zeros((c, 0), np.uint16) for n, (_, c, _) in layout.spans.items()}
        self.argmax = {n: np.zeros((c, 0), d) for n, (_, c, d) in layout.spans.items()}
        self.rank = np.zeros(0, np.int64)
        self.slot: dict[str, int] = {}
        self.ids: list[str | None] = []  # per slot; None when free
        self.free: list[int] = []
        self.sorted: list[str] = []

    def reserve(self, capacity: int) -> None:
        """Room for ``capacity`` slots without regrowing (a full load knows its row count)."""
        if capacity > self.rank.size:
            self._grow(capacity)

    def remove(self, ids: Sequence[str]) -> None:
        gone = [i for i in ids if i in self.slot]
        if not gone:
            return
        slots = np.array([self.slot.pop(i) for i in gone], np.int64)
        for codes in self.codes.values():
            scatter(codes, slots, np.zeros((slots.size, codes.shape[0]), np.uint16))
        for slot in slots.tolist():
            self.ids[slot] = None
            self.free.append(slot)
        if len(gone) > 64:
            self.sorted = [i for i in self.sorted if i in self.slot]
        else:
            for id in gone:
                del self.sorted[bisect.bisect_left(self.sorted, id)]

    def upsert(self, ids: list[str], columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
        """Write entries ``ids`` from decoded columns {layer: (float16 [n, C], argmax [n, C])};
        returns the new ids, which ``order`` must then rank."""
        new = [i for i in ids if i not in self.slot]
        slots = np.array([self._slot_for(i) for i in ids], np.int64)
        for name, (maxima, argmax) in columns.items():
            scatter(self.codes[name], slots, order_codes(maxima))
            scatter(self.argmax[name], slots, argmax)
        return new

    def order(self, new: list[str]) -> None:
        """Rank ``new`` ids among the others: one by one, or by a fresh sort when they are many."""
        if len(new) > max(64, len(self.slot) // 64):
            self.sorted = sorted(self.slot)
            self._renumber()
        elif not all([self._place(i) for i in new]):  # a list: every id must reach `sorted`
            self._renumber()

    def _slot_for(self, id: str) -> int:
        if id in self.slot:
            return self.slot[id]
        if self.free:
            slot = self.free.pop()
        else:
            slot = len(self.ids)
            self.ids.append(None)
            if slot >= self.rank.size:
                self._grow(max(16, 2 * self.rank.size))
        self.slot[id], self.ids[slot] = slot, id
        return slot

    def _grow(self, capacity: int) -> None:
        def grown(a: np.ndarray) -> np.ndarray:
            out = np.zeros(a.shape[:-1] + (capacity,), a.dtype)
            out[..., :a.shape[-1]] = a
            return out
        self.codes = {n: grown(a) for n, a in self.codes.items()}
        self.argmax = {n: grown(a) for n, a in self.argmax.items()}
        self.rank = grown(self.rank)

    def _place(self, id: str) -> bool:
        """Insert ``id`` in ``sorted`` and give it a rank between its neighbours' (False: no room)."""
        pos = bisect.bisect_left(self.sorted, id)
        self.sorted.insert(pos, id)
        lo = int(self.rank[self.slot[self.sorted[pos - 1]]]) if pos else None
        hi = int(self.rank[self.slot[self.sorted[pos + 1]]]) if pos + 1 < len(self.sorted) else None
        if lo is None:
            rank = 0 if hi is None else hi - _GAP
        elif hi is None:
            rank = lo + _GAP
        else:
            rank = (lo + hi) // 2
        if rank in (lo, hi) or abs(rank) >= _RANK_LIMIT:
            return False
        self.rank[self.slot[id]] = rank
        return True

    def _renumber(self) -> None:
        slots = np.fromiter((self.slot[i] for i in self.sorted), np.int64, len(self.sorted))
        self.rank[slots] = np.arange(len(slots), dtype=np.int64) * _GAP
