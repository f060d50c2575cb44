"""Crash drills for ``<m>-neighbours`` over a real TorchServe: acknowledged adds, a SIGKILL of the
index-owning worker, then a check that every acknowledged id is still there.

Used by ``tests/integration/test_neighbours_serving.py`` (20+ cycles) and by
``benchmarks/index_crash.py`` (100+ cycles with random kill timing).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import requests

from convscope.serving import RunningServer


@dataclass
class NeighboursClient:
    server: RunningServer
    model: str = "digits"
    dim: int = 128
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def name(self) -> str:
        return f"{self.model}-neighbours"

    def call(self, doc: dict, timeout: float = 60) -> requests.Response:
        return self.session.post(f"{self.server.url()}/predictions/{self.name}", json=doc, timeout=timeout,
                                 headers={"Authorization": f"Bearer {self.server.keys['inference']}"})

    def add(self, key: str, vector: np.ndarray) -> requests.Response:
        return self.call({"op": "add", "id": key, "vector": vector.tolist(), "metadata": {"drill": True}})

    def nearest(self, vector: np.ndarray) -> str:
        answer = self.call({"vector": vector.tolist(), "k": 1})
        answer.raise_for_status()
        return answer.json()["neighbours"][0]["id"]

    def count(self) -> int:
        answer = self.call({"op": "stats"})
        answer.raise_for_status()
        return answer.json()["count"]

    def worker(self) -> dict:
        answer = requests.get(f"{self.server.url('management')}/models/{self.name}", timeout=10,
                              headers={"Authorization": f"Bearer {self.server.keys['management']}"})
        answer.raise_for_status()
        return answer.json()[0]["workers"][0]

    def wait_for_new_worker(self, old_pid: int, killed_at: float, timeout: float = 120) -> float:
        """Seconds from ``killed_at`` (monotonic) until a worker other than ``old_pid`` is READY
        and answers (TorchServe restarts it)."""
        while time.monotonic() - killed_at < timeout:
            try:
                worker = self.worker()
                if worker["status"] == "READY" and int(worker["pid"]) != old_pid \
                        and self.call({"op": "stats"}, timeout=10).status_code == 200:
                    return time.monotonic() - killed_at
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no new worker after {timeout} s")


@dataclass
class Drill:
    """Acknowledged ids and their vectors across cycles; ``missing`` lists any that vanished."""

    client: NeighboursClient
    seed: int = 0
    acked: dict[str, np.ndarray] = field(default_factory=dict)
    recoveries: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def _add_many(self, cycle: int, count: int, stop: threading.Event | None = None) -> None:
        for i in range(count):
            if stop is not None and stop.is_set():
                return
            key, vector = f"drill-{self.seed}-{cycle}-{i}", self.rng.normal(size=self.client.dim).astype(np.float32)
            try:
                answer = self.client.add(key, vector)
            except requests.RequestException:
                continue  # the worker died under it: not acknowledged
            if answer.status_code == 200:
                self.acked[key] = vector

    def cycle(self, number: int, adds: int = 5, kill_delay: float | None = None) -> None:
        """Adds, then SIGKILL the worker: after the adds were acknowledged (``kill_delay`` None),
        or ``kill_delay`` seconds into a stream of adds still in flight."""
        pid = int(self.client.worker()["pid"])
        if kill_delay is None:
            self._add_many(number, adds)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
        else:
            stop = threading.Event()
            writer = threading.Thread(target=self._add_many, args=(number, 10_000, stop))
            writer.start()
            time.sleep(kill_delay)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(0.5)
            stop.set()
            writer.join()
        self.recoveries.append(self.client.wait_for_new_worker(pid, killed_at))

    def missing(self) -> list[str]:
        """Acknowledged ids whose exact vector no longer finds them first."""
        return [key for key, vector in self.acked.items() if self.client.nearest(vector) != key]
