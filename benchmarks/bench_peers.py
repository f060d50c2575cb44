"""Suite sections that run the existing benchmarks' measurements: explanation methods against
their peers (``explain_speed.measure``, issue 4's goals) and nearest-neighbour QPS and recall
(``index_speed.measure`` on synthetic mixtures; ``neighbours_quality.measure`` on digits,
issue 5's goals)."""

from __future__ import annotations

import tempfile

import torch

from benchmarks import explain_speed, index_speed, neighbours_quality
from benchmarks.bench_types import Goal, Log, Section, fmt, table
from convscope.config import EngineConfig
from convscope.explain import METHODS

QUICK_METHODS = ("gradcam", "gradient", "input_x_gradient", "layercam")
RECALL_GOAL = index_speed.TARGET_RECALL
PRECISION_GOAL = 0.95


def explanation_rows(rows: list[tuple]) -> tuple[list[list[str]], list[Goal]]:
    """Table rows and goals of ``explain_speed.measure``'s rows."""
    cells, goals = [], []
    for model, method, batch, ours, theirs, floor in rows:
        status = explain_speed.goal_status(method, ours, theirs, floor)
        speedup = theirs / ours if theirs else None
        cells.append([model, f"`{method}`", str(batch), fmt(ours * 1e3, 1),
                      fmt(theirs * 1e3 if theirs else None, 1), fmt(speedup, 2, "x"),
                      fmt(ours / floor if floor else None), status[0] if status else "-"])
        if status:
            measured = f"{speedup:.2f}x" + (f", {ours / floor:.2f} of the floor" if floor else "")
            goals.append(Goal(f"{method} vs {explain_speed.GOALS[method][0]}, {model} batch {batch}",
                              status[0], measured, status[1]))
    return cells, goals


def explanations(quick: bool, log: Log) -> Section:
    methods = list(QUICK_METHODS) if quick else list(METHODS)
    repeats = 2 if quick else 3
    device = torch.device("cpu")
    # A worker's threads: more than one thread per process on a shared machine measures the
    # oversubscription (10x slower at 2 threads under load here), not the methods.
    torch.set_num_threads(EngineConfig().intra_op_threads)
    rows = explain_speed.measure(["efficientnet_lite0"], [1], methods, device, repeats, log=log)
    cells, goals = explanation_rows(rows)
    lines = [f"`explain_speed.measure` on the CPU ({torch.get_num_threads()} torch threads), efficientnet_lite0, "
             f"batch 1, chunk {explain_speed.chunk_for(device)}, median of {repeats} (Score-CAM "
             "once), ms per image. Peers: pytorch-grad-cam for the CAMs, Captum for the rest, with "
             "the settings in benchmarks/explain_speed.py (their module contiguous NCHW, as a user holds it; ConvScope's "
             "twin channels-last); floor = 50 batched forward + input-gradient passes of ConvScope's twin (SmoothGrad, "
             "IG; part of their goal), or one forward pass of the serving runtime per window (occlusion) or per "
             "sample (LIME; reported). LIME: 1000 samples, 50 SLIC superpixels, against the lime package "
             "with ConvScope's superpixels, its batch_size=10 and the PyTorch module as classifier (the goal), "
             "then at ConvScope's chunk, then on ConvScope's ONNX session (the same forward: lime's own overhead). "
             "Methods: " + ", ".join(f"`{m}`" for m in methods) + ".", "",
             *table(["model", "method", "batch", "ConvScope (ms/img)", "peer (ms/img)", "speed-up",
                     "floor ratio", "goal"], cells)]
    if quick:
        lines += ["", "Quick run: the methods with a goal that take seconds each (SmoothGrad, IG, occlusion, "
                  "Score-CAM, LIME) are left out; the full run measures every method."]
    return Section("explanations", lines, goals)


def _index_args(quick: bool, root: str) -> list[list[str]]:
    if quick:
        return [["--quick", "--dims", "128", "--no-adds", "--dir", root]]
    common = ["--replay-sizes", "", "--no-adds", "--rounds", "1", "--dir", root]
    return [["--sizes", "10k,100k", "--dims", "128", "--ann-sizes", "100k", "--recovery-size", "100k", *common],
            ["--sizes", "10k", "--dims", "1280", "--ann-sizes", "10k", "--recovery-size", "10k", *common]]


def neighbours(quick: bool, log: Log) -> Section:
    exact, ann = [], []
    with tempfile.TemporaryDirectory(prefix="convscope-bench-index-") as root:
        for argv in _index_args(quick, root):
            result = index_speed.measure(index_speed.parse_args(argv))
            exact += result["exact_rows"]
            ann += result["ann"]
    exact_cells = [[str(r["dim"]), index_speed.size_name(r["n"]), fmt(r["t"].qps, 0), fmt(r["t"].p50_ms, 3),
                    fmt(r["t"].p99_ms, 3)] for r in exact]
    ann_cells, goals = [], []
    for r in ann:
        if not (r["default"] or r.get("fastest")):
            continue
        knob = f"{'ef_search' if r['knob'] == 'ef_search' else 'nprobe'} {r['shown']}"
        role = " / ".join(x for x, on in (("default", r["default"]), ("fastest >= 0.95", r.get("fastest"))) if on)
        ann_cells.append([str(r["dim"]), index_speed.size_name(r["n"]), r["index"], f"{knob} ({role})",
                          f"{r['recall']:.4f}", fmt(r["t"].qps, 0), f"{r['qps_ratio']:.2f}x",
                          fmt(r["t"].p50_ms, 3), f"{r['speedup']:.1f}x"])
        if r["default"]:
            where = f"{index_speed.size_name(r['n'])} x {r['dim']}"
            goals.append(Goal(f"recall@10 of {r['index']} at the defaults, {where}", f">= {RECALL_GOAL:g}",
                              f"{r['recall']:.4f}", r["recall"] >= RECALL_GOAL))
    log(f"neighbours: {len(exact)} exact rows, {len(ann)} ANN rows")
    lines = ["`index_speed.measure`: `FaissIndex`, cosine, k = 10, synthetic Gaussian-mixture vectors of the "
             "built-in dims, 1000 fresh queries; search with 1 FAISS thread (the service's). Batched QPS: 100 "
             "queries per call; p50/p99: one query per call.", "",
             *table(["dim", "vectors", "exact QPS (batched)", "exact p50 (ms)", "exact p99 (ms)"], exact_cells), "",
             "HNSW and IVF at the spec's defaults and at the fastest setting with recall@10 >= 0.95 "
             "(ratios to exact at the same size):", "",
             *table(["dim", "vectors", "index", "setting", "recall@10", "QPS (batched)", "QPS x exact",
                     "single p50 (ms)", "p50 speed-up"], ann_cells)]
    if quick:
        lines += ["", "Quick run: 10k x 128 only; digits precision@10 (neighbours_quality) is in the full run."]
    else:
        lines_q, goals_q = _digits_quality()
        lines += lines_q
        goals += goals_q
    return Section("neighbours", lines, goals)


def _digits_quality() -> tuple[list[str], list[Goal]]:
    result = neighbours_quality.measure()
    goals = [Goal("digits precision@10 in feature space (cosine)", f">= {PRECISION_GOAL:g}", f"{p:.4f}",
                  p >= PRECISION_GOAL) for space, metric, p, _, _ in result["precision"]
             if space.startswith("feature") and metric == "cosine"]
    goals += [Goal(f"digits recall@10 of {kind} at the defaults", f">= {RECALL_GOAL:g}", f"{r:.4f}",
                   r >= RECALL_GOAL) for kind, r, _ in result["recall"] if kind != "flat (exact)"]
    lines = ["", "Digits (`neighbours_quality.measure`): 1,000 held-out digits against the 4,000-digit "
             "gallery; a neighbour is right when its label is the query's.", "",
             *neighbours_quality.tables(result)]
    return lines, goals
