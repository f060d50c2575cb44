"""``<m>-neighbours`` through a real TorchServe: the acceptance path of issue 5, crash drills
(SIGKILL of the index-owning worker), a full restart, and concurrent clients."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from convscope.serving import start
from tests.chaos import Drill, NeighboursClient
from tests.imaging import held_out_digits, rendered_digits

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def digits_only(store, tmp_path_factory):
    """A store holding just the digits archive: a server of its own starts in seconds."""
    only = tmp_path_factory.mktemp("digits-store")
    (only / "digits.mar").symlink_to((store / "digits.mar").resolve())
    return only


@pytest.fixture(scope="module")
def drill_server(digits_only, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("drill")
    running = start(digits_only, run_dir)
    try:
        yield running
    finally:
        running.stop()


def test_a_posted_digit_gets_ten_neighbours_of_its_own_class(server):
    for digit, png in held_out_digits(per_class=1):
        answer = server.predict("digits-neighbours", data=png, headers={"Content-Type": "image/png"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "digits" and len(body["neighbours"]) == 10
        labels = [n["label"] for n in body["neighbours"]]
        assert labels.count(str(digit)) > 5, (digit, labels)
        assert all(set(n) == {"id", "distance", "label", "metadata"} for n in body["neighbours"])


def test_add_then_search_finds_the_new_image_first_over_every_transport_form(server):
    _, image = rendered_digits(1, seed=21)[3]
    added = server.predict("digits-neighbours", files={"data": ("three.jpg", image)},
                           data={"op": "add", "id": "it/three", "label": "3", "metadata": '{"from": "multipart"}'})
    assert added.status_code == 200, added.text
    assert added.json()["created"] is True
    found = server.predict("digits-neighbours", json={"image": base64.b64encode(image).decode(), "k": 2})
    first = found.json()["neighbours"][0]
    assert first["id"] == "it/three" and first["label"] == "3" and first["metadata"] == {"from": "multipart"}
    assert server.predict("digits-neighbours", json={"op": "delete", "id": "it/three"}).status_code == 200


def test_index_metrics_are_on_the_metrics_endpoint(server):
    vector = np.random.default_rng(3).normal(size=128).tolist()
    assert server.predict("digits-neighbours", json={"op": "add", "id": "it/metrics", "vector": vector}).ok
    count = server.predict("digits-neighbours", json={"op": "stats"}).json()["count"]
    assert server.predict("digits-neighbours", json={"vector": vector}).ok
    text = requests.get(server.metrics_url, timeout=10).text
    for op in ("add", "search", "stats"):
        assert f'convscope_index_operation_duration_seconds_count{{model="digits",op="{op}"}}' in text
    assert f'convscope_index_entries{{model="digits"}} {float(count)}' in text
    assert 'convscope_request_duration_seconds_count{endpoint="neighbours",model="digits"}' in text
    server.predict("digits-neighbours", json={"op": "delete", "id": "it/metrics"})


@pytest.mark.parametrize("doc, status", [
    ({"k": 0}, 400), ({"k": -1}, 400), ({"k": "x"}, 400), ({"k": 10**9}, 400),
    ({"vector": [1.0, 2.0]}, 400), ({"image": base64.b64encode(b"GIF89a broken").decode()}, 400),
    ({"op": "delete", "id": "nobody"}, 404), ({"op": "delete"}, 400), ({"op": "stats", "k": 2}, 400),
])
def test_bad_requests_are_4xx_with_a_message(server, doc, status):
    answer = server.predict("digits-neighbours", json=doc)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == status and answer.json()["message"]


def test_a_bad_item_fails_alone_in_a_batch(server):
    """The session server batches digits-neighbours by 8 within 5 ms; sent together, each
    request still gets its own answer."""
    docs = [{"vector": np.ones(128).tolist(), "k": 1}, {"vector": [1.0]}, {"op": "stats"}, {"k": 0}] * 2
    with ThreadPoolExecutor(len(docs)) as pool:
        statuses = list(pool.map(lambda d: server.predict("digits-neighbours", json=d).status_code, docs))
    assert statuses == [200, 400, 200, 400] * 2


def test_acknowledged_adds_survive_twenty_worker_kills(drill_server):
    client = NeighboursClient(drill_server)
    before = client.count()
    drill = Drill(client, seed=1)
    for cycle in range(20):
        drill.cycle(cycle, adds=5)
    assert drill.missing() == []
    assert client.count() == before + len(drill.acked) == before + 100


def test_kills_during_a_stream_of_adds_lose_nothing_acknowledged(drill_server):
    client = NeighboursClient(drill_server)
    drill = Drill(client, seed=2)
    for cycle, delay in enumerate((0.05, 0.3, 0.7)):
        drill.cycle(cycle, kill_delay=delay)
    assert len(drill.acked) > 0 and drill.missing() == []


def test_concurrent_adds_and_searches_lose_nothing(drill_server):
    client = NeighboursClient(drill_server)
    before = client.count()
    rng = np.random.default_rng(7)
    vectors = {f"conc-{i}": rng.normal(size=128).astype(np.float32) for i in range(120)}

    def work(item):
        key, vector = item
        added = client.add(key, vector)
        found = client.call({"vector": vector.tolist(), "k": 3})
        return added.status_code, found.status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(work, vectors.items()))
    assert statuses == [(200, 200)] * len(vectors)
    assert client.count() == before + len(vectors)
    assert all(client.nearest(v) == k for k, v in vectors.items())


def test_everything_acknowledged_is_there_after_a_full_restart(drill_server, digits_only):
    client = NeighboursClient(drill_server)
    _, image = rendered_digits(1, seed=33)[8]
    added = client.call({"op": "add", "id": "restart/eight", "label": "8", "image": base64.b64encode(image).decode()})
    assert added.status_code == 200, added.text
    count = client.count()
    drill_server.stop()
    again = start(digits_only, drill_server.run_dir)
    try:
        restarted = NeighboursClient(again)
        assert restarted.count() == count
        found = restarted.call({"image": base64.b64encode(image).decode(), "k": 1}).json()
        assert found["neighbours"][0]["id"] == "restart/eight"
    finally:
        again.stop()


def _processes_mentioning(text: str) -> list[int]:
    """Processes with ``text`` in their command line or environment (workers inherit the run
    directory through TMPDIR and CONVSCOPE_INDEX_ROOT)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen = b"".join(open(f"/proc/{entry}/{part}", "rb").read() for part in ("cmdline", "environ"))
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(entry))
    return found


def test_sigterm_to_convscope_serve_stops_the_whole_server(digits_only, tmp_path):
    """A supervisor stops `make serve` with SIGTERM: TorchServe's frontend and workers must go
    too (TorchServe's own launcher leaves Java running), releasing ports and index locks."""
    run_dir = tmp_path / "run"
    serve = subprocess.Popen([sys.executable, "-m", "convscope.serving", "--model-store", str(digits_only),
                              "--run-dir", str(run_dir), "--free-ports"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_processes_mentioning(str(run_dir))) < 9:  # convscope-serve, gateway, launcher, java, 5 workers
            assert time.monotonic() < deadline and serve.poll() is None, "the server did not come up"
            time.sleep(0.5)
        time.sleep(3)  # let the workers load
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=90) == 0
        assert "stopping (SIGTERM)" in serve.stdout.read()
        assert _processes_mentioning(str(run_dir)) == []
    finally:
        if serve.poll() is None:  # a failed assertion above: stop the whole server, not just its parent
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=90)
            except subprocess.TimeoutExpired:
                serve.kill()
