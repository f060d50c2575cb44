"""A real TorchServe, started by the tests on free loopback ports from the built model store,
with the hardened config of deploy/ (token auth on, registration off)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from convscope.serving import prepare_run_dir, registrations
from convscope.spec import ServingSpec

PORT_NAMES = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
# Batching made certain for the batch-isolation tests: digits waits up to 300 ms to fill 8.
OVERRIDES = {"digits": ServingSpec(batch_size=8, max_batch_delay_ms=300)}


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Server:
    ports: dict[str, int]
    run_dir: Path
    process: subprocess.Popen
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['inference']}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['management']}"

    def auth(self, kind: str = "inference") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[kind]}"}

    def predict(self, name: str, headers: dict | None = None, **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/predictions/{name}",
                             headers={**self.auth(), **(headers or {})}, timeout=60, **kwargs)

    def workers(self, name: str) -> list[dict]:
        answer = requests.get(f"{self.management_url}/models/{name}",
                              headers=self.auth("management"), timeout=10)
        answer.raise_for_status()
        return answer.json()[0]["workers"]

    def log_tail(self, lines: int = 60) -> str:
        logs = sorted((self.run_dir / "logs").glob("*.log")) + [self.run_dir / "torchserve.out"]
        text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
        return "\n".join(text.splitlines()[-lines:])


def _wait_ready(server: Server, names: list[str], deadline: float) -> None:
    key_file = server.run_dir / "key_file.json"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"TorchServe exited with {server.process.returncode}:\n{server.log_tail()}")
        if key_file.exists():
            keys = json.loads(key_file.read_text())
            server.keys = {kind: keys[kind]["key"] for kind in ("inference", "management", "API")}
            try:
                ready = all(any(w["status"] == "READY" for w in server.workers(n)) for n in names)
            except requests.RequestException:
                ready = False
            if ready:
                return
        time.sleep(1)
    raise RuntimeError(f"TorchServe not ready in time:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def server(store, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("torchserve")
    ports = dict(zip(PORT_NAMES, _free_ports(len(PORT_NAMES))))
    command, env = prepare_run_dir(run_dir, store, ports, OVERRIDES)
    with open(run_dir / "torchserve.out", "wb") as out:
        process = subprocess.Popen(command, cwd=run_dir, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(ports, run_dir, process, {})
    try:
        _wait_ready(server, [r.name for r in registrations(store)], time.monotonic() + 240)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole process group (frontend and workers), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
