"""Bad input at scale, the full run (issue 8, item 1): seeded bad and borderline requests
(tests/fuzzing.py) to every endpoint of a ConvScope started here, 8 at a time.

    .venv/bin/python benchmarks/fuzz.py --per-endpoint 2000 --seed 1 [--write]

Counts answers by status per endpoint, 5xx (must be 0), dropped connections (must be 0),
4xx without a clear error document, certainly-wrong requests that were accepted, and worker
restarts (worker pids before and after, and convscope_worker_starts_total). ``--write`` puts
the row into the "Bad input" section of RELIABILITY.md. Exits non-zero on any failure and
prints each failing input (the worker log is in the run directory, kept with --keep).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.procs import registration_workers  # noqa: E402
from benchmarks.report import RELIABILITY  # noqa: E402
from convscope.serving import start  # noqa: E402
from tests import fuzzing  # noqa: E402

TITLE = "# ConvScope reliability and security scoreboard"
SECTION = "## Bad input"
HEADER = ("| date | command | inputs per endpoint | inputs in all | 2xx | 4xx | 5xx | dropped | "
          "unclear 4xx | wrong accepted | worker restarts | time |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def pids(server) -> dict[str, list[int]]:
    return {name: sorted(w["pid"] for w in registration_workers(server, name)) for name in server.names}


def chunks(iterable, size: int = 400):
    """Lists of ``size`` (pool.map would otherwise take every case into memory at once)."""
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def worker_starts(server) -> float:
    text = requests.get(server.url("convscope_metrics") + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^convscope_worker_starts_total\{[^}]*\} (\S+)$", text, re.M))


def write_section(row: str) -> None:
    """Add ``row`` to the Bad input section, touching nothing else (re-read right before)."""
    text = RELIABILITY.read_text() if RELIABILITY.exists() else TITLE + "\n"
    intro = (f"{SECTION}\n\nSeeded bad and borderline requests (tests/fuzzing.py: mutated JPEG, PNG, GIF, "
             "WebP, TIFF, BMP; wrong content types; bad base64 and JSON; every parameter out of range "
             "or of the wrong type; unknown parameters; multipart oddities) to every endpoint, "
             "8 at a time. Goal: 0 responses of 5xx, 0 dropped connections, 0 worker restarts. "
             "The fast version (300 inputs) is `tests/integration/test_fuzz.py` in `make test`.\n\n"
             f"{HEADER}\n")
    if SECTION not in text:
        text = text.rstrip("\n") + "\n\n" + intro
    start = text.index(SECTION)
    following = text.find("\n## ", start + len(SECTION))
    end = len(text) if following < 0 else following + 1
    lines = text[start:end].rstrip("\n").split("\n")
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))  # the table's last row
    section = "\n".join(lines[:last + 1] + [row] + lines[last + 1:]) + "\n"
    RELIABILITY.write_text(text[:start] + section + ("\n" + text[end:] if end < len(text) else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-endpoint", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="convscope-fuzz-"))
    server = start(REPO / "model_store", tmp / "run")
    inference = {"Authorization": f"Bearer {server.keys['inference']}"}
    session_url = server.url("inference")

    def post(name, timeout, headers=None, **kwargs):
        return requests.post(f"{session_url}/predictions/{name}", headers={**inference, **(headers or {})},
                             timeout=timeout, **kwargs)

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures: list[str] = []
    started = time.monotonic()
    try:
        before_pids, before_starts = pids(server), worker_starts(server)

        def one(case):
            status, body = fuzzing.send(post, case)
            return case, status, body

        done = 0
        with ThreadPoolExecutor(args.threads) as pool:
            for case, status, body in (answer for chunk in chunks(fuzzing.iter_cases(args.seed, args.per_endpoint))
                                       for answer in pool.map(one, chunk)):
                bucket = counts[case.endpoint]
                bucket["sent"] += 1
                bucket["dropped" if status is None else f"{status // 100}xx"] += 1
                problem = fuzzing.verdict(case, status, body)
                if problem:
                    kind = ("5xx" if status and status >= 500 else "dropped" if status is None
                            else "wrong accepted" if status < 300 else "unclear 4xx")
                    bucket[kind + "!"] += 1
                    failures.append(f"{case.endpoint} / {case.name}: {problem}")
                if status is not None and 200 <= status < 300:
                    for entry in fuzzing.added_ids(case):
                        post(f"{case.model}-neighbours", 60, json={"op": "delete", "id": entry})
                done += 1
                if done % 500 == 0:
                    print(f"{done} sent, {time.monotonic() - started:.0f} s, {len(failures)} unacceptable", flush=True)
        after_pids, after_starts = pids(server), worker_starts(server)
    finally:
        server.stop()
    seconds = time.monotonic() - started
    restarts = sum(len(set(after_pids[n]) - set(before_pids[n])) for n in before_pids)
    restarts = max(restarts, int(after_starts - before_starts))
    total = collections.Counter()
    print(f"\n{'endpoint':28} {'sent':>6} {'2xx':>6} {'4xx':>6} {'5xx':>5} {'dropped':>7}")
    for name in fuzzing.ENDPOINTS:
        c = counts[name]
        total.update(c)
        print(f"{name:28} {c['sent']:6} {c['2xx']:6} {c['4xx']:6} {c['5xx']:5} {c['dropped']:7}")
    for line in failures[:50]:
        print("UNACCEPTABLE", line)
    command = f"`.venv/bin/python benchmarks/fuzz.py --per-endpoint {args.per_endpoint} --seed {args.seed}`"
    row = (f"| {datetime.date.today()} | {command} | {args.per_endpoint} x {len(fuzzing.ENDPOINTS)} | {total['sent']} | {total['2xx']} | "
           f"{total['4xx']} | **{total['5xx']}** | **{total['dropped']}** | {total['unclear 4xx!']} | "
           f"{total['wrong accepted!']} | **{restarts}** | {seconds:.0f} s |")
    print("\n" + row)
    print(json.dumps({"per_endpoint": {n: dict(counts[n]) for n in fuzzing.ENDPOINTS}, "restarts": restarts}))
    if args.write:
        write_section(row)
    if args.keep or failures or restarts:
        print(f"run directory kept: {tmp / 'run'}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures or restarts:
        raise SystemExit(f"{len(failures)} unacceptable answers, {restarts} worker restarts")


if __name__ == "__main__":
    main()
