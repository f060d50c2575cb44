"""A real Prometheus (the Debian package) scraping the test server with deploy/prometheus/'s
config and rules, rendered for the server's free ports and a 1 s interval: every target is up,
explanation p95 per method has exactly the methods called, the error counter moves on a bad
request, and every scraped series is one the metric-name test pins."""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import pytest
import requests

from tests.imaging import held_out_digits
from tests.unit.test_metric_names import CONVSCOPE, GATEWAY, TARGET_LABELS, TORCHSERVE, series_names
from tests.unit.test_prometheus_rules import JOB_PORTS, RULES, render_config

pytestmark = pytest.mark.integration
CALLED = {"gradcam": "digits-cam", "scorecam": "digits-cam", "smoothgrad": "digits-saliency"}
"""The explanation methods this test calls, and the registration that serves each."""
JOB_METRICS = {"torchserve": TORCHSERVE, "convscope": CONVSCOPE, "convscope-gateway": GATEWAY}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params) -> dict | list:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]

    def query(self, expr: str, by: str | None = None) -> dict:
        """An instant vector: {value of label ``by``: sample value}, or {None: value} without ``by``."""
        result = self.api("query", query=expr)["result"]
        return {r["metric"].get(by) if by else None: float(r["value"][1]) for r in result}

    def wait(self, read: Callable, done: Callable, what: str, timeout: float = 20):
        """Poll ``read()`` until ``done(value)``; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {what} not seen within {timeout} s; last: {value}")
            time.sleep(0.25)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is missing: `make setup` installs the Debian package prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    (folder / "prometheus.yml").write_text(render_config(server.running.ports, "1s", RULES))
    address = f"127.0.0.1:{_free_port()}"
    with open(folder / "prometheus.log", "wb") as log:
        process = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address={address}"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        running = Prometheus(f"http://{address}")

        def targets():
            try:
                return {t["labels"]["job"]: t["health"] for t in running.api("targets")["activeTargets"]}
            except requests.RequestException as error:
                if process.poll() is not None:
                    pytest.fail(f"prometheus exited:\n{(folder / 'prometheus.log').read_text()[-3000:]}")
                return str(error)

        running.wait(targets, lambda t: t == {job: "up" for job in JOB_PORTS}, "every target up")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_every_scrape_target_is_up(prometheus):
    targets = prometheus.api("targets")["activeTargets"]
    assert sorted((t["labels"]["job"], t["health"], t["lastError"]) for t in targets) == \
        sorted((job, "up", "") for job in JOB_PORTS)


def test_explanation_p95_per_method_has_exactly_the_methods_called(server, prometheus):
    png = held_out_digits(1)[0][1]

    def traffic():
        assert server.predict("digits", data=png, headers={"Content-Type": "image/png"}).status_code == 200
        for method, name in CALLED.items():
            answer = server.predict(name, files={"data": ("d.png", png)}, data={"method": method})
            assert answer.status_code == 200, answer.text

    # Twice, with a scrape between: a histogram child created by the first call needs a second
    # observation before rate() sees it move.
    traffic()
    counts = 'convscope_explanation_duration_seconds_count{model="digits"}'
    prometheus.wait(lambda: prometheus.query(counts, "method"), lambda c: set(CALLED) <= set(c),
                    "the explanation counts")
    traffic()
    p95 = ("histogram_quantile(0.95, sum by (method, le) "
           '(rate(convscope_explanation_duration_seconds_bucket{model="digits"}[1m])))')
    found = prometheus.wait(lambda: {m: v for m, v in prometheus.query(p95, "method").items() if not math.isnan(v)},
                            lambda v: set(v) == set(CALLED), "p95 of the methods called")
    assert all(0 < seconds <= 120 for seconds in found.values()), found
    # The recording rule the alerts and the dashboard use agrees (rules are evaluated every second).
    recorded = 'convscope:explanation_duration_seconds:p95_5m{model="digits"} >= 0'  # drops NaN: idle methods
    prometheus.wait(lambda: prometheus.query(recorded, "method"), lambda v: set(v) == set(CALLED), "the recorded p95")
    classify = 'convscope:requests:rate5m{model="digits"} > 0'
    assert "classify" in prometheus.wait(lambda: prometheus.query(classify, "endpoint"), lambda v: "classify" in v,
                                         "the classify request rate")


def test_a_bad_request_moves_the_error_counters(server, prometheus):
    engine = 'sum(convscope_errors_total{{model="digits", endpoint="classify", type="{}"}})'
    frontend = "sum(Requests4XX)"
    before = prometheus.query(engine.format("InvalidImage")).get(None, 0.0), prometheus.query(frontend).get(None, 0.0)
    answer = server.predict("digits", data=b"junk", headers={"Content-Type": "image/png"})
    assert (answer.status_code, answer.json()["type"]) == (400, "InvalidImage")
    prometheus.wait(lambda: prometheus.query(engine.format("InvalidImage")).get(None), lambda v: v == before[0] + 1,
                    "the engine's error counter move by one")
    prometheus.wait(lambda: prometheus.query(frontend).get(None), lambda v: v == before[1] + 1,
                    "TorchServe's Requests4XX move by one")


def test_every_scraped_series_is_pinned(prometheus):
    problems = set()
    for job, pinned in JOB_METRICS.items():
        expected = {series: set(labels) | set(TARGET_LABELS) | ({"le"} if series.endswith("_bucket") else set())
                    for name, (kind, labels) in pinned.items() for series in series_names(name, kind)}
        created = {name.removesuffix("_total") + "_created" for name, (kind, _) in pinned.items() if kind != "gauge"}
        series = prometheus.api("series", **{"match[]": f'{{job="{job}"}}'})
        scraped = [(s["__name__"], set(s) - {"__name__"}) for s in series
                   if s["__name__"] != "up" and not s["__name__"].startswith("scrape_")]
        assert scraped, job
        for name, labels in scraped:
            if name in created:  # prometheus_client's creation timestamps (single-process registries)
                continue
            if name not in expected:
                problems.add(f"{job} serves {name}{sorted(labels)}, which test_metric_names.py does not pin")
            elif labels != expected[name]:
                problems.add(f"{job} {name}: labels {sorted(labels)}, pinned {sorted(expected[name])}")
    assert sorted(problems) == []
