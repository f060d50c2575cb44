"""The top-activation store (convscope/index/activations.py): what the writer commits a reader
sees after refresh(), in this process and another; top() equals a brute-force top-k over every
write (float16 values, ties by id); a SIGKILLed writer loses no acknowledged entry; a failed
transaction, a full disk or a bad row changes nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import BadRequest, IndexCorrupt, IndexUnavailable, InternalError, NotFound, SpecError
from convscope.index.activations import STORE_FILE, ActivationReader, ActivationRow, ActivationStore, LayerSummary

REPO = Path(__file__).resolve().parents[2]
# "wide" has h*w > 65536, so its positions are stored as uint32; "head" is a 1x1 map.
LAYERS = {"conv": (8, 4, 4), "wide": (3, 300, 300), "head": (5, 1, 1)}


def make_row(i: int, seed: int = 0, levels: int = 4, image: bool = True) -> ActivationRow:
    """Entry ``img/<i>``, a pure function of (i, seed): few distinct values, so many ties, and
    values such as 0.3 that float16 rounds."""
    rng = np.random.default_rng([seed, i])
    layers = {name: LayerSummary((rng.integers(0, levels, c) * 0.3 - 0.3).astype(np.float32),
                                 rng.integers(0, h * w, c))
              for name, (c, h, w) in LAYERS.items()}
    return ActivationRow(f"img/{i:04d}", f"label{i % 3}", {"i": i, "seed": seed}, {"size": [i, 2 * i]},
                         layers, rng.bytes(int(rng.integers(1, 64))) if image else None)


def brute_top(rows: dict[str, ActivationRow], layer: str, channel: int, k: int) -> list[tuple]:
    scored = [(float(np.float16(r.layers[layer].maxima[channel])), r.id, int(r.layers[layer].argmax[channel]))
              for r in rows.values()]
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(i, v, a) for v, i, a in scored[:k]]


def check_tops(reader: ActivationReader, rows: dict[str, ActivationRow]) -> None:
    reader.refresh()
    assert reader.count() == len(rows)
    for layer, (c, _, _) in LAYERS.items():
        for channel in range(c):
            for k in (1, 3, 10, len(rows) + 5):
                assert reader.top(layer, channel, k) == brute_top(rows, layer, channel, k), (layer, channel, k)


def same_row(got: ActivationRow, want: ActivationRow) -> None:
    assert (got.id, got.label, got.metadata, got.info, got.image) == \
        (want.id, want.label, want.metadata, want.info, want.image)
    assert set(got.layers) == set(LAYERS)
    for name, summary in want.layers.items():
        assert got.layers[name].maxima.dtype == np.float32 and got.layers[name].argmax.dtype == np.int64
        np.testing.assert_array_equal(got.layers[name].maxima, summary.maxima.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(got.layers[name].argmax, summary.argmax)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "m" / STORE_FILE


def test_put_upsert_delete_round_trip_matches_brute_force(path):
    rng = np.random.default_rng(7)
    with ActivationStore.open(path, LAYERS) as store, ActivationReader.open(path) as reader:
        assert reader.count() == 0 and reader.top("conv", 0, 5) == []
        rows = {r.id: r for r in (make_row(int(i)) for i in rng.permutation(40))}
        store.put(list(rows.values()))
        check_tops(reader, rows)
        gone = sorted(rng.choice(sorted(rows), 10, replace=False))
        store.delete(gone + ["img/never"])  # unknown ids are ignored
        for i in gone:
            del rows[i]
        check_tops(reader, rows)
        for i in rng.choice(sorted(rows), 5, replace=False):  # upserts: new values, same ids
            rows[i] = make_row(int(i.split("/")[1]), seed=1, image=False)
            store.put([rows[i]])
        fresh = [make_row(100 + n) for n in range(15)]
        store.put(fresh)
        rows.update({r.id: r for r in fresh})
        check_tops(reader, rows)
        assert len(reader._table.ids) == 45  # 40 slots, 10 freed and reused, 5 more
        assert store.count() == len(rows) and store.ids() == sorted(rows)
        for i in sorted(rows)[::7]:
            same_row(reader.row(i), rows[i])
        store.delete(list(rows))
        check_tops(reader, {})
        with pytest.raises(NotFound, match="no entry 'img/0001'"):
            reader.row("img/0001")


def test_ties_are_broken_by_id_whatever_the_insertion_order(path):
    """Every value ties; ids arrive in an order that squeezes new ranks between two neighbours
    until no integer is left (a renumbering), then at random, then in bulk."""
    tied = LayerSummary(np.ones(8, np.float32), np.zeros(8, np.int64))
    rest = {n: LayerSummary(np.zeros(c, np.float32), np.zeros(c, np.int64)) for n, (c, _, _) in LAYERS.items()}

    def row(id: str) -> ActivationRow:
        return ActivationRow(id, None, {}, {}, {**rest, "conv": tied})

    ids = ["a", "b"] + ["a" + chr(c) for c in range(126, 60, -1)]  # each sorts right after "a"
    ids += [f"r{int(n)}" for n in np.random.default_rng(3).permutation(100)]
    with ActivationStore.open(path, LAYERS) as store, ActivationReader.open(path) as reader:
        for n, id in enumerate(ids):
            store.put([row(id)])
            reader.refresh()
            assert [i for i, _, _ in reader.top("conv", 3, 1000)] == sorted(ids[:n + 1])
        squeeze = ["a!" + chr(c) for c in range(126, 86, -1)]  # one batch that runs out of room
        bulk = [f"bulk{n:03d}" for n in range(500)]  # one batch large enough to sort afresh
        for batch in (squeeze, bulk):
            store.put([row(id) for id in batch])
            ids += batch
            reader.refresh()
            assert [i for i, _, _ in reader.top("conv", 3, 2000)] == sorted(ids)
        assert [i for i, _, _ in reader.top("conv", 0, 4)] == sorted(ids)[:4]


def test_refresh_with_nothing_new_is_one_query(path):
    with ActivationStore.open(path, LAYERS) as store, ActivationReader.open(path) as reader:
        store.put([make_row(1)])
        reader.refresh()
        seen: list[str] = []
        reader._conn.set_trace_callback(seen.append)
        reader.refresh()
        assert len(seen) == 1 and "meta" in seen[0]


def test_a_reader_behind_trimmed_deletes_reloads(path):
    with ActivationStore.open(path, LAYERS) as store, \
            ActivationReader.open(path) as behind, ActivationReader.open(path) as current:
        store.keep_deletes = 4
        rows = {r.id: r for r in (make_row(i) for i in range(20))}
        store.put(list(rows.values()))
        behind.refresh()
        for i in range(12):
            store.delete([f"img/{i:04d}"])
            del rows[f"img/{i:04d}"]
            check_tops(current, rows)  # a reader that keeps up follows the tombstones
        db = sqlite3.connect(path)
        trimmed = db.execute("SELECT value FROM meta WHERE key = 'trimmed'").fetchone()[0]
        # 12 deletes, trimmed to 2 whenever a 5th is listed: the newest 3 are kept
        assert [i for (i,) in db.execute("SELECT id FROM deletes ORDER BY seq")] == [f"img/{i:04d}" for i in (9, 10, 11)]
        db.close()
        assert trimmed > behind._seq  # the tombstones `behind` needs are gone ...
        check_tops(behind, rows)  # ... so it reloaded, and agrees


READER_CHILD = """
import json, sys
from pathlib import Path
from convscope.index.activations import ActivationReader
reader = ActivationReader.open(Path(sys.argv[1]))
for line in sys.stdin:
    reader.refresh()
    print(json.dumps([reader.count(), reader.top("conv", 2, 50)]), flush=True)
"""


def test_a_reader_in_another_process_sees_commits_without_reopening(path):
    with ActivationStore.open(path, LAYERS) as store:
        child = subprocess.Popen([sys.executable, "-c", READER_CHILD, str(path)], cwd=REPO, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            rows: dict[str, ActivationRow] = {}
            for step in range(4):
                if step == 2:
                    store.delete(sorted(rows)[::3])
                    rows = {i: r for i, r in rows.items() if i not in sorted(rows)[::3]}
                else:
                    batch = [make_row(i, seed=step) for i in range(step * 10, step * 10 + 15)]
                    store.put(batch)
                    rows.update({r.id: r for r in batch})
                child.stdin.write("\n")
                child.stdin.flush()
                count, top = json.loads(child.stdout.readline())
                assert count == len(rows)
                assert [tuple(t) for t in top] == brute_top(rows, "conv", 2, 50)
        finally:
            child.stdin.close()
            child.wait(timeout=30)


WRITER_CHILD = """
import sys
from pathlib import Path
from convscope.index.activations import ActivationStore
from tests.unit.test_activation_store import LAYERS, make_row
store = ActivationStore.open(Path(sys.argv[1]), LAYERS)
print("ready", flush=True)
for i in range(int(sys.argv[2]), 10**6):
    store.put([make_row(i)])
    print(i, flush=True)  # acknowledged
"""


def test_a_sigkilled_writer_loses_no_acknowledged_entry(path):
    rng = np.random.default_rng(11)
    acknowledged: list[int] = []
    in_flight: set[str] = set()  # a put that may have committed before the kill, unacknowledged
    for _ in range(3):
        start = acknowledged[-1] + 2 if acknowledged else 0
        child = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(path), str(start)], cwd=REPO,
                                 text=True, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert child.stdout.readline() == "ready\n"
        for _ in range(int(rng.integers(5, 40))):
            acknowledged.append(int(child.stdout.readline()))
        time.sleep(float(rng.uniform(0, 0.02)))
        os.kill(child.pid, signal.SIGKILL)
        acknowledged += [int(line) for line in child.stdout.read().split()]
        child.wait(timeout=30)
        with ActivationStore.open(path, LAYERS) as store:  # opens cleanly: the lock died with it
            stored = store.ids()
        ids = {make_row(i).id for i in acknowledged}
        in_flight.add(make_row(acknowledged[-1] + 1).id)
        assert ids <= set(stored) <= ids | in_flight
        with ActivationReader.open(path) as reader:
            for i in acknowledged:
                same_row(reader.row(make_row(i).id), make_row(i))


def test_a_failed_transaction_applies_nothing(path):
    a, b, c = make_row(1), make_row(2), make_row(3)
    with ActivationStore.open(path, LAYERS) as store, ActivationReader.open(path) as reader:
        store.put([a, b])
        reader.refresh()
        with pytest.raises(RuntimeError, match="index write failed"):
            with store.transaction():
                store.put([c, make_row(2, seed=5)])
                store.delete([a.id])
                assert store.ids() == [b.id, c.id]  # visible inside the transaction
                raise RuntimeError("index write failed")
        assert store.ids() == [a.id, b.id]
        same_row(reader.row(b.id), b)
        check_tops(reader, {a.id: a, b.id: b})
        with store.transaction():  # and a block that succeeds commits everything together
            store.put([c])
            store.delete([a.id])
        check_tops(reader, {b.id: b, c.id: c})


def test_a_full_disk_is_a_503_and_keeps_what_was_acknowledged(path):
    with ActivationStore.open(path, LAYERS) as store, ActivationReader.open(path) as reader:
        (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
        store._conn.execute(f"PRAGMA max_page_count = {pages + 4}")  # a tiny disk, deterministically
        rows: dict[str, ActivationRow] = {}
        with pytest.raises(IndexUnavailable, match="full") as refused:
            for i in range(1000):
                store.put([make_row(i)])
                rows[make_row(i).id] = make_row(i)
        assert refused.value.status == 503 and len(rows) > 3
        assert store.ids() == sorted(rows)
        check_tops(reader, rows)
        store._conn.execute("PRAGMA max_page_count = 1000000")
        store.put([make_row(5000)])  # the store is still writable once there is room
        assert store.count() == len(rows) + 1


def test_reconcile_deletes_exactly_what_the_index_lacks(path):
    with ActivationStore.open(path, LAYERS) as store:
        store.put([make_row(i) for i in range(30)])
        absent = {"img/0003", "img/0017", "img/0029"}
        assert store.reconcile(lambda ids: [i not in absent for i in ids]) == 3
        assert store.ids() == sorted({make_row(i).id for i in range(30)} - absent)
        assert store.reconcile(lambda ids: [True] * len(ids)) == 0
        with pytest.raises(InternalError, match="answers"):
            store.reconcile(lambda ids: [True])


def test_seed_is_copied_once_and_checked(tmp_path, path):
    seed = tmp_path / "build" / STORE_FILE
    with ActivationStore.open(seed, LAYERS) as builder, ActivationReader.open(seed):
        builder.put([make_row(i) for i in range(5)])
        with pytest.raises(SpecError, match="close its writer"):  # its writes are still in the WAL
            ActivationStore.open(path, LAYERS, seed=seed)
    with ActivationStore.open(path, LAYERS, seed=seed) as store:
        assert store.ids() == [make_row(i).id for i in range(5)]
        store.put([make_row(9)])
    assert sorted(p.name for p in path.parent.iterdir()) == [STORE_FILE, STORE_FILE + ".lock"]
    with ActivationStore.open(path, LAYERS, seed=seed) as store:  # an existing store ignores the seed
        assert store.count() == 6
    with ActivationReader.open(path) as reader:
        same_row(reader.row(make_row(9).id), make_row(9))
    other = {**LAYERS, "conv": (9, 4, 4)}
    fresh = tmp_path / "other" / STORE_FILE
    with pytest.raises(SpecError, match=r"conv is \(8, 4, 4\) in the store, \(9, 4, 4\) in the spec"):
        ActivationStore.open(fresh, other, seed=seed)
    assert not fresh.exists()
    with pytest.raises(SpecError, match="head is only in the store.*convscope-index"):
        ActivationStore.open(path, {n: s for n, s in LAYERS.items() if n != "head"})
    with pytest.raises(SpecError, match="does not exist"):
        ActivationStore.open(fresh, LAYERS, seed=tmp_path / "nope.sqlite")


def test_one_writer_at_a_time_and_commits_reach_the_disk(path):
    with ActivationStore.open(path, LAYERS) as store:
        # WAL + synchronous=FULL: a COMMIT has fsync'd the log when it returns (a power cut
        # cannot be simulated here; SIGKILL above only proves that acknowledged means committed).
        assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)
        with pytest.raises(IndexUnavailable, match="another writer"):
            ActivationStore.open(path, LAYERS)
    ActivationStore.open(path, LAYERS).close()


def test_bad_rows_are_refused_whole_with_a_reason(path):
    good = make_row(1)

    def with_layer(name: str, summary) -> ActivationRow:
        return ActivationRow("bad", None, {}, {}, {**good.layers, name: summary})

    cases = [
        (ActivationRow("bad", None, {}, {}, {n: good.layers[n] for n in ("conv", "wide")}),
         r"has layers \['conv', 'wide'\]; the store holds \['conv', 'head', 'wide'\]"),
        (with_layer("conv", LayerSummary(np.zeros(7), np.zeros(7, np.int64))), "7 maxima.*has 8 channels"),
        (with_layer("conv", LayerSummary(np.zeros(8), np.full(8, 16))), r"integers in \[0, 16\)"),
        (with_layer("head", LayerSummary(np.full(5, np.nan), np.zeros(5, np.int64))), "NaN"),
        (ActivationRow("", None, {}, {}, good.layers), "id must be a string"),
        (ActivationRow("bad", None, {}, [1], good.layers), "info of entry 'bad' must be a JSON object"),
        (ActivationRow("bad", None, {}, {}, good.layers, image="png"), "image .* must be bytes"),
    ]
    with ActivationStore.open(path, LAYERS) as store:
        for row, message in cases:
            with pytest.raises(BadRequest, match=message):
                store.put([make_row(2), row])
        with pytest.raises(BadRequest, match="twice"):
            store.put([good, good])
        assert store.count() == 0  # nothing of any refused batch was written
        store.put([with_layer("head", LayerSummary(np.array([1e6, -1e6, -0.0, 0.0, 1]), np.zeros(5, np.int64))),
                   ActivationRow("bad2", None, {}, {}, {**good.layers, "head": LayerSummary(
                       np.array([0.0, 0.0, 0.0, -0.0, 1]), np.zeros(5, np.int64))})])
        with ActivationReader.open(path) as reader:  # clipped to float16's range; -0.0 ties with 0.0
            assert reader.row("bad").layers["head"].maxima.tolist() == [65504, -65504, 0, 0, 1]
            assert reader.top("head", 2, 2) == [("bad", 0.0, 0), ("bad2", 0.0, 0)]
            assert reader.top("head", 3, 2) == [("bad", 0.0, 0), ("bad2", 0.0, 0)]
            with pytest.raises(BadRequest, match=r"layer 'nope' is not stored; the stored layers are \['conv'"):
                reader.top("nope", 0, 1)
            with pytest.raises(BadRequest, match=r"channel must be an integer in \[0, 8\) for layer 'conv', got 8"):
                reader.top("conv", 8, 1)
            with pytest.raises(BadRequest, match="k must be a positive integer"):
                reader.top("conv", 0, 0)
    with pytest.raises(SpecError, match="positive integers"):
        ActivationStore.open(path.with_name("x.sqlite"), {"conv": (8, 0, 4)})


def test_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(NotFound, match="no activation store"):
        ActivationReader.open(tmp_path / STORE_FILE)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexCorrupt):
        ActivationReader.open(tmp_path / "junk.sqlite")
    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(IndexCorrupt, match="not a ConvScope activation store"):
        ActivationReader.open(tmp_path / "other.sqlite")
