"""A real TorchServe, started by the tests on free loopback ports from the built model store,
with the hardened config of deploy/ (token auth on, registration off)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from convscope.serving import RunningServer, start
from convscope.spec import ServingSpec

# Batching made certain for the batch tests: these wait up to 300 ms to fill a batch of 8.
# digits-features runs two workers, so metrics are seen aggregated across worker processes.
OVERRIDES = {"digits": ServingSpec(batch_size=8, max_batch_delay_ms=300),
             "digits-cam": ServingSpec(batch_size=8, max_batch_delay_ms=300, response_timeout_s=600),
             "digits-features": ServingSpec(batch_size=16, max_batch_delay_ms=5, workers=2)}


@dataclass
class Server:
    running: RunningServer

    @property
    def url(self) -> str:
        return self.running.url("inference")

    @property
    def management_url(self) -> str:
        return self.running.url("management")

    @property
    def run_dir(self):
        return self.running.run_dir

    def auth(self, kind: str = "inference") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.running.keys[kind]}"}

    def predict(self, name: str, headers: dict | None = None, timeout: float = 120,
                **kwargs) -> requests.Response:
        return requests.post(f"{self.url}/predictions/{name}",
                             headers={**self.auth(), **(headers or {})}, timeout=timeout, **kwargs)

    @property
    def metrics_url(self) -> str:
        return self.running.url("convscope_metrics") + "/metrics"

    def workers(self, name: str) -> list[dict]:
        answer = requests.get(f"{self.management_url}/models/{name}",
                              headers=self.auth("management"), timeout=10)
        answer.raise_for_status()
        return answer.json()[0]["workers"]


@pytest.fixture(scope="session")
def server(store, tmp_path_factory):
    running = start(store, tmp_path_factory.mktemp("torchserve"), overrides=OVERRIDES)
    try:
        yield Server(running)
    finally:
        running.stop()
