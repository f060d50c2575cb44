"""Feature index speed: exact, HNSW and IVF search, recall, build, recovery, cost of durability.

    .venv/bin/python benchmarks/index_speed.py [--quick] [--sizes 10k,100k,1m] [--dims 128,1280]
        [--ann-sizes 100k] [--recovery-size 100k] [--replay-sizes 5k,10k,20k] [--skip 1280:1m]
        [--threads 1] [--rounds 2] [--add-rounds 3] [--dir var/bench-index] [--write] [--out FILE]

Everything goes through ``FaissIndex`` (``open_index``'s embedded backend) with the cosine
metric, k = 10, on synthetic vectors of the built-in models' dims (128: digits, 1280:
efficientnet_lite0). The vectors are a Gaussian mixture that looks like an embedding gallery,
not uniform noise: 1000 clusters of unequal sizes (gamma(1) weights) around a shared mean
direction, with a decaying within-cluster spectrum (see ``Mixture``); queries are fresh draws
from the same mixture, never stored vectors. Fixed seeds: every run sees the same data, and the
first 10k vectors of the 100k gallery are the 10k gallery.

1. Exact search (``type = "flat"``): batched QPS (queries in batches of 100) and single-query
   latency (one query per ``search`` call, as the neighbours endpoint calls it), with FAISS's
   own search on the same index as the baseline (what the wrapper adds).
2. HNSW and IVF at the spec defaults (hnsw_m 32, ef_construction 200, ef_search 128; IVF nlist
   auto, nprobe auto: calibrated at training), then a sweep of ef_search / nprobe: recall@10 against the exact results on
   the same data and queries, QPS and latency as a ratio to exact at the same size, build time.
   IVF is built twice: trained on the whole gallery (one bulk add), and trained at
   ``ivf_train_size`` (2048) as an index grown by small writes is, then filled.
3. Snapshot write and reopen (recovery) times at ``--recovery-size``, and the reopen that
   replays a whole log of ``--replay-sizes`` adds (no snapshot).
4. Add throughput with durability on (each add's log record fsync'd before it returns), one
   entry per call and batches of 64, against FAISS alone (no log) on the same vectors; the log
   without fsync separates the fsync from the bookkeeping (for that decomposition only).

Search runs with ``--threads`` FAISS threads (1: the service's default ``intra_op_threads``);
builds use every core (the ingest CLI's default). Each search timing is taken ``--rounds`` times
and the best round is reported (the machine may be shared); adds take the median of
``--add-rounds``; every round is printed as it runs.
Indexes are written under ``--dir`` on the real disk, and removed after.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import publish  # noqa: E402

from convscope import __version__  # noqa: E402
from convscope.index import Entry, open_index  # noqa: E402
from convscope.index.faiss_index import FaissIndex  # noqa: E402
from convscope.spec import IndexSpec  # noqa: E402

K = 10
CHUNK = 10_000
"""Vectors per generated chunk, and per add call in bulk loads."""
QUERY_BATCH = 100
NUM_QUERIES = 1000
BULK = 10**9
"""snapshot_every during bulk loads: measure search, not snapshots (timed separately)."""
EF_SWEEP = (16, 32, 64, 128, 256, 512)
NPROBE_SWEEP = (1, 2, 4, 8, 16, 32, 64, 128)
TARGET_RECALL = 0.95


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def size_name(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


class Mixture:
    """Synthetic embeddings. x = g + c_k + s * z: a shared mean direction g (energy 1 per
    dimension: unrelated vectors have cosine ~0.4, like pooled post-ReLU features), cluster
    centres c_k ~ N(0, I) for 1000 clusters of gamma(1)-distributed sizes, and within-cluster
    noise z ~ N(0, I) scaled by s_j proportional to (j + 1)^-0.5 (a decaying spectrum), with total
    energy 0.5625 per dimension: a vector's cosine to its cluster centre ~0.8."""

    def __init__(self, dim: int, seed: int = 0, clusters: int = 1000, spread: float = 0.75) -> None:
        self.dim, self.seed = dim, seed
        rng = np.random.default_rng([seed, dim, 0])
        self.shared = rng.standard_normal(dim, dtype=np.float32)
        self.centres = rng.standard_normal((clusters, dim), dtype=np.float32) + self.shared
        weights = rng.gamma(1.0, size=clusters)
        self.weights = weights / weights.sum()
        decay = (np.arange(dim) + 1.0) ** -0.5
        self.scale = (spread * decay / np.sqrt(np.mean(decay ** 2))).astype(np.float32)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        labels = rng.choice(len(self.centres), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.dim), dtype=np.float32)
        noise *= self.scale
        noise += self.centres[labels]
        return noise

    def chunk(self, i: int) -> np.ndarray:
        """Gallery vectors [i * CHUNK, (i + 1) * CHUNK)."""
        return self._draw(np.random.default_rng([self.seed, self.dim, 1, i]), CHUNK)

    def gallery(self, n: int) -> np.ndarray:
        return np.concatenate([self.chunk(i) for i in range(-(-n // CHUNK))])[:n]

    def queries(self, n: int) -> np.ndarray:
        return self._draw(np.random.default_rng([self.seed, self.dim, 2]), n)


def unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def entries(vectors: np.ndarray, start: int, prefix: str = "v") -> list[Entry]:
    return [Entry(f"{prefix}{start + i}", vectors[i], "synthetic", {}) for i in range(len(vectors))]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- timing ------------------------------------------------------------------------------------

@dataclasses.dataclass
class SearchTiming:
    qps: float
    batched_queries: int
    p50_ms: float
    p99_ms: float
    single_queries: int


class Timer:
    """Search timings with per-round budgets; the best of ``rounds`` rounds is kept."""

    def __init__(self, rounds: int, single_budget_s: float, batched_budget_s: float,
                 max_single: int = 500) -> None:
        self.rounds, self.single_budget, self.batched_budget = rounds, single_budget_s, batched_budget_s
        self.max_single = max_single

    def batched(self, search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, int]:
        search(queries[:QUERY_BATCH])  # warm-up
        best = (0.0, 0)
        for r in range(self.rounds):
            done, started = 0, time.perf_counter()
            while done < len(queries):
                search(queries[done:done + QUERY_BATCH])
                done += QUERY_BATCH
                if time.perf_counter() - started > self.batched_budget:
                    break
            qps = done / (time.perf_counter() - started)
            print(f"      batched round {r + 1}: {qps:,.1f} QPS over {done} queries", flush=True)
            best = max(best, (qps, done))
        return best

    def single(self, search: Callable[[np.ndarray], object], queries: np.ndarray) -> tuple[float, float, int]:
        for i in range(5):
            search(queries[i:i + 1])  # warm-up
        best = None
        for r in range(self.rounds):
            times: list[float] = []
            round_start = time.perf_counter()
            for i in range(min(self.max_single, len(queries))):
                started = time.perf_counter()
                search(queries[i:i + 1])
                times.append(time.perf_counter() - started)
                if len(times) >= 20 and time.perf_counter() - round_start > self.single_budget:
                    break
            p50, p99 = statistics.median(times) * 1e3, pct(times, 0.99) * 1e3
            print(f"      single round {r + 1}: p50 {p50:.3f} ms p99 {p99:.3f} ms over {len(times)} queries",
                  flush=True)
            if best is None or p50 < best[0]:
                best = (p50, p99, len(times))
        return best

    def search(self, index: FaissIndex, queries: np.ndarray) -> SearchTiming:
        qps, nb = self.batched(lambda q: index.search(q, K), queries)
        p50, p99, ns = self.single(lambda q: index.search(q, K), queries)
        return SearchTiming(qps, nb, p50, p99, ns)


# -- building ------------------------------------------------------------------------------------

def spec_for(kind: str, **overrides) -> IndexSpec:
    return IndexSpec(type=kind, metric="cosine", snapshot_every=BULK, **overrides)


def fresh_dir(root: Path, name: str) -> Path:
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def bulk_load(index: FaissIndex, mixture: Mixture, n: int, first: int = CHUNK) -> float:
    """Add the first ``n`` gallery vectors, ``first`` in the first add call then CHUNK per call."""
    started, done = time.perf_counter(), 0
    pending = np.zeros((0, mixture.dim), np.float32)
    chunk_no = 0
    while done < n:
        size = min(first if done == 0 else CHUNK, n - done)
        while len(pending) < size:
            pending = np.concatenate([pending, mixture.chunk(chunk_no)])
            chunk_no += 1
        index.add(entries(pending[:size], done))
        pending, done = pending[size:], done + size
    return time.perf_counter() - started


def exact_ids(index: FaissIndex, queries: np.ndarray) -> list[set[str]]:
    found: list[set[str]] = []
    for start in range(0, len(queries), QUERY_BATCH):
        found += [{nb.id for nb in row} for row in index.search(queries[start:start + QUERY_BATCH], K)]
    return found


def recall(index: FaissIndex, queries: np.ndarray, truth: list[set[str]]) -> float:
    got = exact_ids(index, queries)
    return float(np.mean([len(a & b) / K for a, b in zip(got, truth)]))


def reopen(index: FaissIndex, spec: IndexSpec, dim: int, path: Path) -> tuple[FaissIndex, float]:
    index.close()
    gc.collect()
    started = time.perf_counter()
    again = open_index(spec, dim, path, "bench")
    return again, time.perf_counter() - started


def timed_checkpoint(index: FaissIndex) -> tuple[float, float]:
    started = time.perf_counter()
    index.checkpoint()
    elapsed = time.perf_counter() - started
    size = sum(p.stat().st_size for p in index.directory.glob("snapshot-*.csidx"))
    return elapsed, size / 1e6


def single_adds(index: FaissIndex, vectors: np.ndarray, start: int, prefix: str) -> tuple[float, float, float]:
    """(adds/s, p50 ms, p99 ms) adding ``vectors`` one per call."""
    times = []
    t0 = time.perf_counter()
    for i in range(len(vectors)):
        started = time.perf_counter()
        index.add([Entry(f"{prefix}{start + i}", vectors[i], "synthetic", {"source": "bench"})])
        times.append(time.perf_counter() - started)
    total = time.perf_counter() - t0
    return len(vectors) / total, statistics.median(times) * 1e3, pct(times, 0.99) * 1e3


# -- the sections ------------------------------------------------------------------------------------

def ann_rows(kind: str, label: str, index: FaissIndex, build_s: float, queries: np.ndarray,
             truth: list[set[str]], exact: SearchTiming, timer: Timer, dim: int, n: int) -> list[dict]:
    """The sweep of one ANN index (spec swapped in place for each setting; defaults first)."""
    knob, values, default = (("ef_search", EF_SWEEP, IndexSpec.ef_search) if kind == "hnsw"
                             else ("ivf_nprobe", NPROBE_SWEEP, IndexSpec.ivf_nprobe))
    base_spec = index.spec
    rows = []
    for value in [default] + [v for v in values if v != default]:
        index.spec = dataclasses.replace(base_spec, **{knob: value})
        r = recall(index, queries, truth)
        print(f"    {label} {knob}={value}: recall@10 {r:.4f}", flush=True)
        t = timer.search(index, queries)
        shown = value if value else f"auto = {index.describe().details['ivf_nprobe']}"  # IVF's calibrated default
        rows.append({"dim": dim, "n": n, "index": label, "knob": knob, "value": value, "shown": shown,
                     "default": value == default,
                     "build_s": build_s, "recall": r, "t": t, "qps_ratio": t.qps / exact.qps,
                     "speedup": exact.p50_ms / t.p50_ms})
    index.spec = base_spec
    ok = [row for row in rows if row["recall"] >= TARGET_RECALL]
    if ok:
        min(ok, key=lambda row: row["t"].p50_ms)["fastest"] = True
    return sorted(rows, key=lambda row: row["value"])


def add_throughput(root: Path, mixture: Mixture, singles: int, batches: int, rounds: int) -> list[dict]:
    """Durable adds (FaissIndex) against FAISS alone, one per call and 64 per call; each mode
    ``rounds`` times on a fresh index, the median round (by adds/s) kept, the range printed."""
    dim = mixture.dim
    vectors = mixture.queries(singles + 64 * batches + 5000)[5000:]  # not the query set
    unit_vectors = unit(vectors)
    rows = []
    for per_call, count in ((1, singles), (64, batches)):
        results, ranges = {}, {}
        for mode in ("durable", "no fsync", "faiss"):
            runs = []
            for r in range(rounds):
                runs.append(_add_round(root, mode, dim, vectors, unit_vectors, per_call, count))
                print(f"    adds dim {dim}, {per_call}/call, {mode}, round {r + 1}: {runs[-1][0]:,.0f} adds/s, "
                      f"p50 {runs[-1][1]:.3f} ms, p99 {runs[-1][2]:.3f} ms ({count} calls)", flush=True)
            runs.sort()
            results[mode] = runs[len(runs) // 2]
            ranges[mode] = (runs[0][0], runs[-1][0])
        rows.append({"dim": dim, "per_call": per_call, "calls": count, "range": ranges["durable"], **results})
    return rows


def _add_round(root: Path, mode: str, dim: int, vectors: np.ndarray, unit_vectors: np.ndarray,
               per_call: int, count: int) -> tuple[float, float, float]:
    gc.collect()
    os.sync()  # flush earlier sections' writes (GBs of logs and snapshots): time this round's fsyncs only
    times = []
    if mode == "faiss":
        raw = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        raw.add_with_ids(unit_vectors[:1], np.array([10**9], np.int64))  # warm-up
        t0 = time.perf_counter()
        for c in range(count):
            started = time.perf_counter()
            part = unit_vectors[c * per_call:(c + 1) * per_call]
            raw.add_with_ids(part, np.arange(c * per_call, c * per_call + len(part), dtype=np.int64))
            times.append(time.perf_counter() - started)
        total = time.perf_counter() - t0
    else:
        path = fresh_dir(root, f"adds-{dim}-{per_call}-{mode.replace(' ', '')}")
        index = open_index(IndexSpec(type="flat", metric="cosine", snapshot_every=BULK), dim, path, "bench")
        index.add([Entry("warm", vectors[0], "synthetic", {})])
        real_fsync = os.fsync
        if mode == "no fsync":
            os.fsync = lambda fd: None  # decomposition only: never how the service runs
        try:
            t0 = time.perf_counter()
            for c in range(count):
                part = vectors[c * per_call:(c + 1) * per_call]
                batch = [Entry(f"a{c * per_call + i}", part[i], "synthetic", {"source": "bench"})
                         for i in range(len(part))]
                started = time.perf_counter()
                index.add(batch)
                times.append(time.perf_counter() - started)
            total = time.perf_counter() - t0
        finally:
            os.fsync = real_fsync
        index.close()
        shutil.rmtree(path, ignore_errors=True)
    return per_call * count / total, statistics.median(times) * 1e3, pct(times, 0.99) * 1e3


def replay_times(root: Path, mixture: Mixture, sizes: list[int]) -> list[dict]:
    """Reopen time of a flat index whose log holds ``n`` adds and no snapshot (full replay)."""
    rows = []
    spec = spec_for("flat")
    for n in sizes:
        path = fresh_dir(root, f"replay-{mixture.dim}-{n}")
        index = open_index(spec, mixture.dim, path, "bench")
        bulk_load(index, mixture, n)
        index, replay_s = reopen(index, spec, mixture.dim, path)
        assert index.count() == n
        index.close()
        shutil.rmtree(path, ignore_errors=True)
        rows.append({"dim": mixture.dim, "n": n, "replay_s": replay_s})
        print(f"    reopen replaying {n} logged adds: {replay_s:.2f} s", flush=True)
    return rows


# -- main ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options below (``--quick`` applied); ``argv`` default: the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k vectors only, 1 round: a smoke test (seconds)")
    parser.add_argument("--sizes", default="10k,100k,1m", help="gallery sizes for exact search")
    parser.add_argument("--dims", default="128,1280")
    parser.add_argument("--ann-sizes", default="100k", help="sizes (among --sizes) that also get HNSW and IVF")
    parser.add_argument("--recovery-size", default="100k", help="size of the snapshot/reopen measurements")
    parser.add_argument("--replay-sizes", default="5k,10k,20k",
                        help="log lengths for the full-replay reopen (no snapshot)")
    parser.add_argument("--add-rounds", type=int, default=3)
    parser.add_argument("--no-adds", action="store_true", help="leave out the add-throughput measurements")
    parser.add_argument("--skip", default="", help="dim:size pairs to leave out of exact search, e.g. 1280:1m")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads while searching (service: 1)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=REPO / "var" / "bench-index")
    parser.add_argument("--write", action="store_true", help="append the tables to BENCHMARKS.md")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.ann_sizes = args.recovery_size = "10k"
        args.replay_sizes = "2k,4k"
        args.rounds = args.add_rounds = 1
    return args


def measure(args: argparse.Namespace) -> dict:
    """Every measurement ``args`` asks for: ``exact_rows``, ``ann`` (HNSW/IVF rows, each with
    ``recall``, ``qps_ratio``, ``speedup``, ``default``), ``recovery``, ``replays``, ``adds``,
    ``elapsed``, ``load_start``, ``build_threads``."""
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    ann_sizes = {parse_size(s) for s in args.ann_sizes.split(",") if s}
    recovery_size = parse_size(args.recovery_size)
    replay_sizes = [parse_size(s) for s in args.replay_sizes.split(",") if s]
    dims = [int(d) for d in args.dims.split(",")]
    skip = {(int(d), parse_size(s)) for d, s in (p.split(":") for p in args.skip.split(",") if p)}
    timer = Timer(args.rounds, single_budget_s=3 if args.quick else 6, batched_budget_s=5 if args.quick else 10,
                  max_single=200 if args.quick else 500)
    build_threads = os.cpu_count() or 1
    root = args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    run_start = time.perf_counter()
    load_start = loadavg()
    print(f"index_speed: faiss {faiss.__version__}, search threads {args.threads}, build threads {build_threads}, "
          f"dir {root}, load average {load_start}", flush=True)

    exact_rows, ann, recovery, replays, adds = [], [], [], [], []
    for dim in dims:
        mixture = Mixture(dim)
        queries = mixture.queries(NUM_QUERIES)
        for n in sizes:
            if (dim, n) in skip:
                continue
            print(f"[{time.perf_counter() - run_start:6.0f} s] dim {dim}, {size_name(n)} vectors (load {loadavg()})",
                  flush=True)
            faiss.omp_set_num_threads(build_threads)
            path = fresh_dir(root, f"flat-{dim}-{n}")
            spec = spec_for("flat")
            index = open_index(spec, dim, path, "bench")
            load_s = bulk_load(index, mixture, n)
            print(f"    flat bulk load {load_s:.1f} s ({n / load_s:,.0f} vectors/s), log "
                  f"{index.describe().details['log_bytes'] / 1e6:.0f} MB", flush=True)
            faiss.omp_set_num_threads(args.threads)
            exact = timer.search(index, queries)
            raw = index._index  # FAISS alone on the same vectors (baseline for the wrapper)
            q_unit = unit(queries)
            raw_p50, raw_p99, _ = timer.single(lambda q, raw=raw: raw.search(q, K), q_unit)
            exact_rows.append({"dim": dim, "n": n, "load_s": load_s, "t": exact, "raw_p50": raw_p50,
                               "raw_p99": raw_p99})
            truth = exact_ids(index, queries) if n in ann_sizes else None
            if n == recovery_size:
                snap_s, snap_mb = timed_checkpoint(index)
                index, reopen_s = reopen(index, spec, dim, path)
                assert index.count() == n
                recovery.append({"dim": dim, "n": n, "index": "flat", "snap_s": snap_s,
                                 "snap_mb": snap_mb, "reopen_s": reopen_s})
                print(f"    flat: snapshot {snap_s:.2f} s ({snap_mb:.0f} MB), reopen from it {reopen_s:.2f} s",
                      flush=True)
            index.close()
            del index, raw
            shutil.rmtree(path, ignore_errors=True)
            gc.collect()
            if truth is None:
                continue
            for kind, label, first in (("hnsw", "hnsw", CHUNK), ("ivf", "ivf", n),
                                       ("ivf", "ivf@2048", IndexSpec.ivf_train_size)):
                faiss.omp_set_num_threads(build_threads)
                path = fresh_dir(root, f"{label.replace('@', '-')}-{dim}-{n}")
                spec = spec_for(kind)
                index = open_index(spec, dim, path, "bench")
                build_s = bulk_load(index, mixture, n, first=first)
                details = index.describe().details
                if kind == "ivf":
                    assert details["ivf_trained"], details
                    label = f"{label} (nlist {details['ivf_nlist']})"
                print(f"    {label} build {build_s:.1f} s (load {loadavg()})", flush=True)
                faiss.omp_set_num_threads(args.threads)
                ann += ann_rows(kind, label, index, build_s, queries, truth, exact, timer, dim, n)
                if n == recovery_size and first != IndexSpec.ivf_train_size:
                    snap_s, snap_mb = timed_checkpoint(index)
                    index, reopen_s = reopen(index, spec, dim, path)
                    assert index.count() == n
                    recovery.append({"dim": dim, "n": n, "index": label, "snap_s": snap_s,
                                     "snap_mb": snap_mb, "reopen_s": reopen_s})
                    print(f"    {label}: snapshot {snap_s:.2f} s ({snap_mb:.0f} MB), reopen {reopen_s:.2f} s",
                          flush=True)
                if first != IndexSpec.ivf_train_size:
                    extra = mixture.queries(NUM_QUERIES + 300)[NUM_QUERIES:]
                    rate, p50, p99 = single_adds(index, extra, 0, "late")
                    adds.append({"dim": dim, "n": n, "index": label, "rate": rate, "p50": p50, "p99": p99,
                                 "count": len(extra)})
                    print(f"    {label}: single adds into it {rate:,.0f}/s p50 {p50:.2f} ms p99 {p99:.2f} ms",
                          flush=True)
                index.close()
                del index
                shutil.rmtree(path, ignore_errors=True)
                gc.collect()
        print(f"[{time.perf_counter() - run_start:6.0f} s] dim {dim}: log replay", flush=True)
        faiss.omp_set_num_threads(build_threads)
        replays += replay_times(root, mixture, replay_sizes)
        print(f"[{time.perf_counter() - run_start:6.0f} s] dim {dim}: add throughput", flush=True)
        if not args.no_adds:
            adds += add_throughput(root, mixture, singles=300 if args.quick else 2000,
                                   batches=30 if args.quick else 200, rounds=args.add_rounds)

    return {"exact_rows": exact_rows, "ann": ann, "recovery": recovery, "replays": replays, "adds": adds,
            "elapsed": time.perf_counter() - run_start, "load_start": load_start, "build_threads": build_threads}


def main() -> None:
    args = parse_args()
    publish(report(args, **measure(args)), args.write, args.out)


def report(args, exact_rows, ann, recovery, replays, adds, elapsed, load_start, build_threads) -> str:
    command = ".venv/bin/python benchmarks/index_speed.py " + shlex.join(sys.argv[1:])
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    out = [f"\n### Index speed run ({time.strftime('%Y-%m-%d')})\n",
           f"Command: `{command.strip()}`  ",
           (f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared: load average {load_start} at "
            f"start, {loadavg()} at end), {memory:.0f} GiB; Python {platform.python_version()}, faiss-cpu "
            f"{faiss.__version__}, numpy {np.__version__}, ConvScope {__version__}. Search with {args.threads} "
            f"FAISS thread(s), builds with {build_threads}; best of {args.rounds} round(s); k = 10, cosine; "
            f"run time {elapsed / 60:.1f} min.  "),
           ("Data: synthetic Gaussian mixture (1000 clusters of unequal sizes, shared mean, decaying "
            "spectrum; fixed seeds), 1000 fresh queries from the same mixture. Not real embeddings.\n")]
    out += [("Exact search (`type = \"flat\"`), through `FaissIndex.search`; FAISS alone = the same "
             "index's own `search` (no validation, no result objects).\n"),
            ("| dim | vectors | bulk load (s) | batched QPS (100/call) | single p50 (ms) | single p99 (ms) "
             "| FAISS alone single p50 (ms) | queries timed (batched / single) |"),
            "|---|---|---|---|---|---|---|---|"]
    for r in exact_rows:
        t = r["t"]
        out.append(f"| {r['dim']} | {size_name(r['n'])} | {r['load_s']:.1f} | {t.qps:,.0f} | {t.p50_ms:.3f} | "
                   f"{t.p99_ms:.3f} | {r['raw_p50']:.3f} | {t.batched_queries} / {t.single_queries} |")
    if ann:
        out += ["", ("Approximate search against exact at the same size (ratios: ANN / exact batched QPS; exact "
                     "single p50 / ANN single p50). Build = all adds through `FaissIndex` (log included; IVF "
                     "training included). `ivf@2048`: trained when it reached ivf_train_size = 2048 entries, as "
                     "an index grown by small writes is, then filled. **default** = the spec's setting; "
                     "*fastest* = the fastest single query with recall@10 >= 0.95.\n"),
                ("| dim | vectors | index | build (s) | setting | recall@10 | batched QPS | x exact | "
                 "single p50 (ms) | single p99 (ms) | speed-up vs exact p50 |"),
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in ann:
            t = r["t"]
            setting = f"{'ef_search' if r['knob'] == 'ef_search' else 'nprobe'} {r['shown']}"
            if r["default"]:
                setting = f"**{setting}** (default)"
            if r.get("fastest"):
                setting += " *fastest*"
            out.append(f"| {r['dim']} | {size_name(r['n'])} | {r['index']} | {r['build_s']:.1f} | {setting} | "
                       f"{r['recall']:.3f} | {t.qps:,.0f} | {r['qps_ratio']:.2f}x | {t.p50_ms:.3f} | "
                       f"{t.p99_ms:.3f} | {r['speedup']:.1f}x |")
    if recovery:
        out += ["", ("Snapshots and recovery: `checkpoint()` (write, fsync, rename, new log), then reopen = "
                     "`open_index` on the directory (read and CRC-check the snapshot, empty log).\n"),
                "| dim | vectors | index | snapshot write (s) | snapshot size (MB) | reopen from snapshot (s) |",
                "|---|---|---|---|---|---|"]
        for r in recovery:
            out.append(f"| {r['dim']} | {size_name(r['n'])} | {r['index']} | {r['snap_s']:.2f} | {r['snap_mb']:.0f} | "
                       f"{r['reopen_s']:.2f} |")
    if replays:
        out += ["", "Reopen with no snapshot: every write replayed from the log (flat index).\n",
                "| dim | logged adds | reopen (s) | per logged add (us) |", "|---|---|---|---|"]
        for r in replays:
            out.append(f"| {r['dim']} | {r['n']:,} | {r['replay_s']:.2f} | {r['replay_s'] / r['n'] * 1e6:,.0f} |")
    durable = [r for r in adds if "per_call" in r]
    if durable:
        out += ["", ("Adds with durability on (each `add` returns after its log record is fsync'd) against "
                     "FAISS alone (`IndexIDMap2(IndexFlatIP).add_with_ids`, no log) on the same vectors, into an "
                     "empty flat index; 'no fsync' = the log written but `os.fsync` stubbed out, to split the "
                     "fsync from the bookkeeping (not a mode the service has). Median of the rounds.\n"),
                ("| dim | entries per add | calls | durable adds/s | (range over rounds) | durable p50 (ms) | "
                 "durable p99 (ms) | no-fsync adds/s | FAISS alone adds/s | durable / FAISS alone |"),
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in durable:
            d, nf, fa = r["durable"], r["no fsync"], r["faiss"]
            out.append(f"| {r['dim']} | {r['per_call']} | {r['calls']} | {d[0]:,.0f} | {r['range'][0]:,.0f}-"
                       f"{r['range'][1]:,.0f} | {d[1]:.3f} | {d[2]:.3f} | {nf[0]:,.0f} | {fa[0]:,.0f} | "
                       f"{d[0] / fa[0]:.4f} |")
    late = [r for r in adds if "per_call" not in r]
    if late:
        out += ["", "Single durable adds into the built approximate indexes (one entry per call):\n",
                "| dim | vectors | index | adds | adds/s | p50 (ms) | p99 (ms) |", "|---|---|---|---|---|---|---|"]
        for r in late:
            out.append(f"| {r['dim']} | {size_name(r['n'])} | {r['index']} | {r['count']} | {r['rate']:,.0f} | "
                       f"{r['p50']:.2f} | {r['p99']:.2f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
