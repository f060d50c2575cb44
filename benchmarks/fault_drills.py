"""The pieces of benchmarks/faults.py: the client mix, process memory, the response-timeout drill
(a test archive of ``digits`` with a short timeout) and the restart under load."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import requests

from benchmarks.procs import registration_workers, server_processes, usage
from convscope.build.archive import archive
from convscope.serving import start
from convscope.spec import read_spec_document

REPO = Path(__file__).resolve().parents[1]

MIX = (("digits", {}), ("digits-features", {}), ("digits-cam", {"method": "gradcam"}),
       ("digits-neighbours", {"k": "3"}), ("digits-neighbours", {"op": "add"}))
SLOW = "slowdigits"
"""The test archive of the timeout drill: ``digits`` with only a saliency endpoint and a short
response timeout, registered as ``slowdigits-saliency`` beside the real store."""
SLOW_NAME = f"{SLOW}-saliency"
SLOW_FIELDS = {"method": "integrated_gradients", "steps": "512"}
"""The slow request: 512 integrated-gradient steps (about 0.6 s per image unloaded on this CPU);
a batch of 8 of them (one TorchServe batch, about 5 s) is far past a 2 s timeout."""


class Mix:
    """Clients sending the mix in a loop; every answer recorded with its time and status.
    ``server`` may be replaced while they run (a restart); the key follows the key file, as a
    client of a restarted server must (TorchServe writes new keys at every start)."""

    def __init__(self, server, images: list[bytes]) -> None:
        self.server, self.images = server, images
        self.answers: list[tuple[float, str, int]] = []
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self._key, self._key_mtime = server.keys["inference"], None

    @property
    def key(self) -> str:
        """The inference key, re-read when TorchServe writes a new key file (at every start; a
        stale key is answered 400 InvalidKeyException, /ping included)."""
        path = self.server.run_dir / "key_file.json"
        try:
            mtime = path.stat().st_mtime_ns
            if mtime != self._key_mtime:
                self._key, self._key_mtime = json.loads(path.read_text())["inference"]["key"], mtime
        except (OSError, ValueError, KeyError):
            pass
        return self._key

    def post(self, name: str, fields: dict, image: bytes | None, timeout: float = 120) -> int:
        fields = dict(fields)
        if fields.get("op") == "add":
            fields.setdefault("id", f"faults/{next(self.ids)}")
        body = {"json": fields} if image is None else {"data": fields, "files": {"data": ("d.png", image)}}
        try:  # an operation without an image (delete) goes as JSON: a bare form is refused (415)
            answer = requests.post(f"{self.server.url('inference')}/predictions/{name}", **body,
                                   headers={"Authorization": f"Bearer {self.key}"}, timeout=timeout)
            status = answer.status_code
        except requests.RequestException:
            status = -1
        if status == 200 and fields.get("op") == "add":
            with self.lock:
                self.acked.append(fields["id"])
        return status

    def client(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self.stop.is_set():
            name, fields = MIX[int(rng.integers(len(MIX)))]
            status = self.post(name, fields, self.images[int(rng.integers(len(self.images)))])
            with self.lock:
                self.answers.append((time.monotonic(), name, status))
            if status != 200:
                time.sleep(0.05)  # a refused connection returns at once: no busy loop on 2 cores

    def run(self, clients: int = 4) -> Self:
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]
        for thread in self.threads:
            thread.start()
        return self

    def halt(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def between(self, start: float, end: float) -> list[tuple[float, str, int]]:
        with self.lock:
            return [a for a in self.answers if start < a[0] <= end]


def errors(answers) -> int:
    return sum(1 for _, _, s in answers if s != 200)


def by_status(answers) -> str:
    counts: dict[str, int] = {}
    for _, name, status in answers:
        if status != 200:
            key = f"{name} {'conn' if status == -1 else status}"
            counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"


def worker_pid(server, name: str) -> int:
    return int(registration_workers(server, name)[0]["pid"])


# -- memory -----------------------------------------------------------------------------------

def rss_mb(pids: list[int]) -> float:
    """Resident memory of ``pids`` in MiB (processes already gone count 0)."""
    return sum(u.rss_bytes for u in map(usage, pids) if u is not None) / 2**20


@dataclass
class RssSampler:
    """RSS of each process group (and of one named worker) every ``period`` seconds, in a thread."""

    server: object
    extra: dict[str, int] = field(default_factory=dict)  # label -> pid
    period: float = 0.5
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            groups = server_processes(self.server)
            row = {name: rss_mb(pids) for name, pids in groups.items()}
            row["worker count"] = len(groups["workers"])
            for label, pid in self.extra.items():
                row[label] = rss_mb([pid])
            self.samples.append((time.monotonic(), row))
            self._stop.wait(self.period)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, before: float, burst_end: float, after: float) -> dict[str, dict[str, float]]:
        """Per group: baseline (median before ``before``), peak between, and the last sample at or
        before ``burst_end + after`` seconds."""
        result = {}
        for key in self.samples[0][1]:
            base = [r[key] for t, r in self.samples if t < before]
            during = [r[key] for t, r in self.samples if before <= t <= burst_end]
            late = [r[key] for t, r in self.samples if t <= burst_end + after]
            result[key] = {"baseline": statistics.median(base), "peak": max(during + base[-1:]),
                           "after": late[-1]}
        return result


# -- response timeout -------------------------------------------------------------------------

def slow_archive(store: Path, work: Path, timeout_s: int) -> Path:
    """``<store>/slowdigits.mar``: digits' spec and weights, only the saliency endpoint, and a
    ``timeout_s`` response timeout (it goes into the archive's model-config.yaml, which
    TorchServe obeys). Batches of up to 8 wait 300 ms, so a burst of slow requests is one batch."""
    doc = read_spec_document(REPO / "model_store" / "digits.toml")
    doc.update(name=SLOW, endpoints=["saliency"], description="fault drill: digits with a short timeout",
               weights=str((REPO / "model_store" / doc["weights"]).resolve()),
               serving={"saliency": {"batch_size": 8, "max_batch_delay_ms": 300,
                                     "response_timeout_s": timeout_s}})
    doc.pop("index", None)
    work.mkdir(parents=True, exist_ok=True)
    spec = work / "slowdigits.json"
    spec.write_text(json.dumps(doc))
    return archive(spec, store)


def response_timeout(server, images: list[bytes], timeout_s: int, slow: int = 8, settle: float = 10) -> dict:
    """While the mix runs on ``digits``, ``slow`` slow requests at once to ``slowdigits-saliency``
    (one batch, far past its timeout): what their clients get, whether TorchServe replaces the
    worker, how long until the registration answers again, and the mix's errors meanwhile."""
    mix = Mix(server, images).run()
    time.sleep(3)
    victim = worker_pid(server, SLOW_NAME)
    answers: list[tuple[int, float]] = []

    def one(_: int) -> None:
        started = time.monotonic()
        status = Mix(server, images).post(SLOW_NAME, SLOW_FIELDS, images[0], timeout=600)
        answers.append((status, time.monotonic() - started))

    sent = time.monotonic()
    with ThreadPoolExecutor(slow) as pool:
        list(pool.map(one, range(slow)))
    answered = time.monotonic()
    probe, recovered, new_pid, probes = Mix(server, images), None, None, 0
    while recovered is None and time.monotonic() - answered < 180:
        probes += 1
        if probe.post(SLOW_NAME, {"method": "gradient"}, images[0], timeout=60) == 200:
            recovered = time.monotonic()
        else:
            time.sleep(0.2)
    try:
        new_pid = worker_pid(server, SLOW_NAME)
    except (requests.RequestException, KeyError, IndexError, ValueError):
        pass
    time.sleep(settle)
    # The slow registration again, now with a request it can finish: no error after recovery.
    slow_after = [probe.post(SLOW_NAME, {"method": "gradient"}, images[i % len(images)], timeout=60)
                  for i in range(20)]
    mix.halt()
    end = recovered or answered
    during = mix.between(sent, end)
    after = mix.between(end + 1.0, float("inf"))
    return {"timeout_s": timeout_s, "slow": slow,
            "statuses": sorted({s for s, _ in answers}), "slow_s": [t for _, t in answers],
            "replaced": new_pid is not None and new_pid != victim,
            "recovery_s": (recovered - answered) if recovered else None,
            "recovery_from_send_s": (recovered - sent) if recovered else None, "probes": probes,
            "mix_during": len(during), "mix_errors_during": errors(during), "mix_failed_by": by_status(during),
            "mix_after": len(after), "mix_errors_after": errors(after),
            "slow_after": len(slow_after), "slow_errors_after": sum(1 for s in slow_after if s != 200)}


# -- restart while clients send ---------------------------------------------------------------

def restart_under_load(store: Path, run_dir: Path, server, images: list[bytes],
                       settle: float = 10) -> tuple[object, dict]:
    """Acknowledged adds, then, while four clients keep sending the mix, the whole server stopped
    and started again on the same ports and run directory: the requests that failed while it was
    down, the gap between the last success before and the first after, /ping, errors once back,
    and every acknowledged add (the mix's and 20 explicit ones) still deletable afterwards."""
    explicit = Mix(server, images)
    for key in (f"restart/{i}" for i in range(20)):
        assert explicit.post("digits-neighbours", {"op": "add", "id": key}, images[0]) == 200
    mix = Mix(server, images).run()
    pings: list[tuple[float, int]] = []
    pinging = threading.Event()

    def ping() -> None:  # TorchServe's /ping wants the inference key too
        while not pinging.is_set():
            try:
                status = requests.get(f"{server.url('inference')}/ping", timeout=5,
                                      headers={"Authorization": f"Bearer {mix.key}"}).status_code
            except requests.RequestException:
                status = -1
            pings.append((time.monotonic(), status))
            time.sleep(0.1)

    pinger = threading.Thread(target=ping)
    pinger.start()
    time.sleep(5)
    stopping = time.monotonic()
    try:
        server.stop()
        down = time.monotonic()
        server = start(store, run_dir, ports=server.ports)
        ready = time.monotonic()
        mix.server = server  # the clients follow the new key file by themselves
        time.sleep(settle)
    finally:
        mix.halt()
        pinging.set()
        pinger.join()
    with mix.lock:
        answers = sorted(mix.answers)
    last_ok = max((t for t, _, s in answers if s == 200 and t < down), default=stopping)
    first_ok = min((t for t, _, s in answers if s == 200 and t > down), default=None)
    first_by = {name: min((t for t, n, s in answers if n == name and s == 200 and t > down), default=None)
                for name in sorted({n for n, _ in MIX})}
    window = [a for a in answers if last_ok < a[0] < (first_ok or float("inf"))]
    before = [a for a in answers if a[0] <= last_ok]
    after = [a for a in answers if first_ok and a[0] > first_ok + 1.0]
    ping_back = min((t for t, s in pings if s == 200 and t > down), default=None)
    ping_down = min((t for t, s in pings if s != 200 and t > stopping), default=None)
    acked = explicit.acked + mix.acked
    deleter = Mix(server, images)
    kept = sum(deleter.post("digits-neighbours", {"op": "delete", "id": key}, None, timeout=60) == 200
               for key in acked)
    return server, {
        "answers": len(answers), "stop_s": down - stopping, "start_s": ready - down,
        "downtime_s": (first_ok - last_ok) if first_ok else None,
        "failed_window": len(window) - sum(1 for a in window if a[2] == 200), "failed_by": by_status(window),
        "errors_before": errors(before), "after": len(after), "errors_after": errors(after),
        "after_failed_by": by_status(after),
        "first_by_s": {n: (t - last_ok if t else None) for n, t in first_by.items()},
        "ping_down_s": (ping_down - stopping) if ping_down else None,
        "ping_back_s": (ping_back - last_ok) if ping_back else None,
        "first_ok_vs_ready_s": (first_ok - ready) if first_ok else None,
        "acked": len(acked), "acked_mix": len(mix.acked), "kept": kept}
