"""A real full disk under the feature index (a 1 MiB tmpfs), not a simulated one: the add that
does not fit fails with a clear 503, acknowledged entries stay, searches go on, and the index
reopens with exactly the acknowledged entries."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import IndexUnavailable
from convscope.index import Entry, open_index
from convscope.spec import IndexSpec

DIM = 256  # 1 KiB a vector: a 1 MiB disk holds a few hundred entries with the log and snapshots


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _batch(start: int, n: int) -> list[Entry]:
    rng = np.random.default_rng(start)
    return [Entry(f"id{start + i}", rng.normal(size=DIM).astype(np.float32), "x", {"i": start + i})
            for i in range(n)]


def test_a_full_disk_fails_the_add_and_keeps_what_was_acknowledged(tiny_disk):
    acknowledged: list[Entry] = []
    with open_index(IndexSpec(), DIM, tiny_disk / "m", "m") as index:
        refused = None
        for start in range(0, 100_000, 20):
            batch = _batch(start, 20)
            try:
                index.add(batch)
            except IndexUnavailable as error:
                refused = error
                break
            acknowledged.extend(batch)
        assert refused is not None, "the disk never filled"
        assert "No space left" in refused.message and refused.status == 503
        assert index.count() == len(acknowledged) > 100
        probe = acknowledged[len(acknowledged) // 2]
        assert index.search(probe.vector[None, :], 1)[0][0].id == probe.id  # searches still work
        # The refused write was cut off the log, so a smaller one may fit: it is all or nothing.
        small = _batch(10**6, 5)
        try:
            index.add(small)
            acknowledged.extend(small)
        except IndexUnavailable:
            pass
        assert index.count() == len(acknowledged)
    with open_index(IndexSpec(), DIM, tiny_disk / "m", "m") as reopened:
        assert reopened.count() == len(acknowledged)
        assert reopened.contains([e.id for e in acknowledged]) == [True] * len(acknowledged)
        last = acknowledged[-1]
        assert reopened.search(last.vector[None, :], 1)[0][0].id == last.id
