"""The benchmark suite (`make bench`): one run, every row of issue 9 side by side, one dated
section with the machine, versions and settings, each row's tables and goal lines, and a summary.

    .venv/bin/python benchmarks/suite.py [--quick] [--write] [--out FILE] [--sections overhead onnx ...]

Sections (each module says how it measures):
- ``overhead``: REST and gRPC end to end minus the in-process handler, and loaded throughput
  against in-process throughput (benchmarks/bench_overhead.py; starts ConvScope on free ports);
- ``preprocessing``, ``onnx``, ``formats``: in this process (benchmarks/bench_compute.py);
- ``explanations``, ``neighbours``: the measurements of explain_speed.py, index_speed.py and
  neighbours_quality.py (benchmarks/bench_peers.py);
- ``inspect``: ``<m>-inspect`` per operation, and the top-activation store at gallery scale
  (benchmarks/bench_inspect.py);
- ``gpu``: only where CUDA is available (benchmarks/bench_gpu.py).

``--quick`` scales everything down (a few minutes on 2 cores; every section still present and
well-formed: what `make test` checks). ``--write`` appends the section to BENCHMARKS.md, and only
when every section ran; ``--out`` also saves it to a file. Progress goes to stderr, the result to
stdout. The exit status is 1 when a section failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks import bench_compute, bench_gpu, bench_inspect, bench_overhead, bench_peers  # noqa: E402
from benchmarks.bench_types import Goal, Section, log_to_stderr, table  # noqa: E402
from benchmarks.report import publish  # noqa: E402
from benchmarks.serving_latency import STORE  # noqa: E402
from convscope import __version__  # noqa: E402
from convscope.config import EngineConfig  # noqa: E402
from convscope.spec import load_spec  # noqa: E402

SECTIONS = {
    "overhead": bench_overhead.run,
    "preprocessing": bench_compute.preprocessing,
    "onnx": bench_compute.onnx_runtime,
    "explanations": bench_peers.explanations,
    "neighbours": bench_peers.neighbours,
    "formats": bench_compute.output_formats,
    "inspect": bench_inspect.run,
    "gpu": bench_gpu.run,
}
TITLES = {"overhead": "Service overhead", "preprocessing": "Preprocessing against a forward pass",
          "onnx": "ONNX Runtime against eager PyTorch", "explanations": "Explanation methods against their peers",
          "neighbours": "Nearest-neighbour QPS and recall",
          "formats": "Response size and encode time per output format",
          "inspect": "Inspect: operations and the top-activation store",
          "gpu": "GPU: throughput, explanation latency, utilisation"}
"""Every section's heading: sections hand back their lines and goals, the suite names them."""
DISTRIBUTIONS = ("torch", "torchvision", "timm", "onnxruntime", "onnxruntime-gpu", "torchserve", "faiss-cpu",
                 "faiss-gpu", "captum", "grad-cam", "grpcio", "numpy", "pillow")
BUILT_IN = ("efficientnet_lite0", "digits")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu_model()}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {gpu}"


def versions() -> str:
    found = [f"Python {platform.python_version()}", f"ConvScope {__version__}"]
    for name in DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def settings_table() -> list[str]:
    rows = []
    for name in BUILT_IN:
        spec = load_spec(STORE / f"{name}.toml")
        for endpoint in spec.endpoints:
            s = spec.serving_for(endpoint)
            rows.append([f"`{name}`", endpoint, str(s.batch_size), str(s.max_batch_delay_ms), str(s.workers),
                         spec.runtime])
    return table(["model", "endpoint", "batch size", "batch delay (ms)", "workers", "runtime"], rows)


def header(args, started: float, load_start: str) -> list[str]:
    command = ".venv/bin/python benchmarks/suite.py " + shlex.join(sys.argv[1:])
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"\n## Benchmark suite ({time.strftime('%Y-%m-%d')}, {cpu_model()}, {os.cpu_count()} cores)", "",
            f"Command: `{command.strip()}` ({'quick' if args.quick else 'full'} run, "
            f"{(time.perf_counter() - started) / 60:.1f} min).  ",
            f"Machine: {machine()}; load average {load_start} at the start, {load_end} at the end "
            "(the machine may be shared: every figure is from this one run).  ",
            f"Versions: {versions()}.  ",
            f"Settings: {EngineConfig().intra_op_threads} torch intra-op thread(s) per worker "
            "(`EngineConfig.intra_op_threads`); the built-in registrations:", "", *settings_table(), ""]


def summary(goals: list[Goal]) -> list[str]:
    met = sum(g.met for g in goals)
    rows = [[g.row, g.goal, g.measured, f"**{g.status}**"] for g in goals]
    return ["### Summary", "", f"{met} of {len(goals)} goals met.", "",
            *table(["row", "goal", "measured", "status"], rows), ""]


def run_section(key: str, quick: bool) -> tuple[Section, bool]:
    """The section, and whether it ran (a crash becomes a section that says so)."""
    log_to_stderr(f"suite: {key} ...")
    started = time.perf_counter()
    try:
        section = SECTIONS[key](quick, log_to_stderr)
    except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others' results
        import traceback

        traceback.print_exc()
        return Section(key, [f"failed: {type(exc).__name__}: {exc}"], title=TITLES[key]), False
    log_to_stderr(f"suite: {key} done in {time.perf_counter() - started:.0f} s")
    section.title = TITLES[key]
    return section, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="everything scaled down: a few minutes")
    parser.add_argument("--write", action="store_true", help="append the section to BENCHMARKS.md")
    parser.add_argument("--out", type=Path, help="also write the section to this file")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    started, load_start = time.perf_counter(), " ".join(f"{x:.2f}" for x in os.getloadavg())
    sections, ok = [], True
    for key in [k for k in SECTIONS if k in args.sections]:
        section, ran = run_section(key, args.quick)
        sections.append(section)
        ok &= ran
    goals = [g for s in sections for g in s.goals]
    text = "\n".join([*header(args, started, load_start), *(s.text() for s in sections), *summary(goals)])
    publish(text, args.write and ok, args.out)
    if not ok:
        log_to_stderr("suite: a section failed; BENCHMARKS.md was not written")
        sys.exit(1)


if __name__ == "__main__":
    main()
