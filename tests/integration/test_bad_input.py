"""The bad-input matrix: each gets the right 4xx with a message, the worker stays alive, and
the next good request succeeds. One bad item in a batch fails alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from convscope.envelope import Payload
from tests.imaging import photo_bytes, png_bomb, rendered_digits, truncated

pytestmark = pytest.mark.integration

JPEG = {"Content-Type": "image/jpeg"}
PNG = {"Content-Type": "image/png"}
JSON = {"Content-Type": "application/json"}


def _digit() -> bytes:
    return rendered_digits(1)[0][1]


# name, endpoint, request kwargs, expected status, words the message must contain
CASES = [
    ("empty body", "digits", dict(data=b"", headers=PNG), 400, "empty"),
    ("random bytes", "digits", dict(data=bytes(range(256)) * 8, headers=PNG), 400, "not a decodable image"),
    ("text as image", "digits", dict(data=b"hello, I am text", headers=JPEG), 400, "not a decodable image"),
    ("text content type", "digits", dict(data=b"hello", headers={"Content-Type": "text/plain"}), 415, "text/plain"),
    ("truncated JPEG", "efficientnet_lite0", dict(data=truncated(photo_bytes("chelsea"), 0.3), headers=JPEG), 400, "truncated"),
    ("truncated PNG", "efficientnet_lite0", dict(data=truncated(photo_bytes("coffee", "PNG"), 0.3), headers=PNG), 400, "corrupt"),
    ("PNG bomb header", "digits", dict(data=png_bomb(30000), headers=PNG), 413, "900000000 pixels"),
    ("PNG bomb", "digits", dict(data=png_bomb(10000, rows_compressed=10000), headers=PNG), 413, "pixels"),
    ("unsupported format", "digits", dict(data=b"P6\n4 4\n255\n" + b"\x00" * 48, headers=PNG), 415, "PPM"),
    ("bad base64", "digits", dict(data=b'{"image": "%%%"}', headers=JSON), 400, "base64"),
    ("malformed JSON", "digits", dict(data=b'{"image": "abc', headers=JSON), 400, "malformed JSON"),
    ("form body", "digits", dict(data={"top_k": "3"}), 415, "application/x-www-form-urlencoded"),
    ("unknown parameter", "digits", dict(files={"data": _digit()}, data={"colour": "red"}), 400, "colour"),
    ("top_k 0", "digits", dict(files={"data": _digit()}, data={"top_k": "0"}), 400, "top_k"),
    ("top_k -1", "digits", dict(files={"data": _digit()}, data={"top_k": "-1"}), 400, "top_k"),
    ("top_k 10^9", "efficientnet_lite0", dict(files={"data": _digit()}, data={"top_k": str(10**9)}), 400, "between 1 and 100"),
    ("top_k x", "digits", dict(files={"data": _digit()}, data={"top_k": "x"}), 400, "integer"),
    ("normalize maybe", "digits-features", dict(files={"data": _digit()}, data={"normalize": "maybe"}), 400, "normalize"),
]


@pytest.mark.parametrize("name, endpoint, kwargs, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_4xx_and_the_worker_survives(server, name, endpoint, kwargs, status, words):
    pids = [w["pid"] for w in server.workers(endpoint)]
    answer = server.predict(endpoint, **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == status and body["type"] and words in body["message"]
    good = server.predict(endpoint, data=_digit(), headers=JPEG)
    assert good.status_code == 200, good.text
    assert [w["pid"] for w in server.workers(endpoint)] == pids, "a worker died or restarted"


def test_unknown_model_is_404(server):
    answer = server.predict("no-such-model", data=_digit(), headers=JPEG)
    assert answer.status_code == 404 and "no-such-model" in answer.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}], ids=["missing", "wrong"])
def test_token_is_required(server, headers):
    answer = requests.post(f"{server.url}/predictions/digits", data=_digit(), headers={**JPEG, **headers}, timeout=10)
    assert answer.status_code == 400 and "Token Authorization failed" in answer.json()["message"]


def test_body_over_the_request_limit_is_413(server):
    answer = server.predict("digits", data=b"\xff\xd8" + b"\x00" * (11 * 1024 * 1024), headers=JPEG)
    assert answer.status_code == 413


def test_model_registration_is_off(server):
    answer = requests.post(f"{server.management_url}/models?url=digits.mar&model_name=x",
                           headers=server.auth("management"), timeout=10)
    assert answer.status_code == 405


def _batch_sizes(server) -> tuple[float, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(server.run_dir / "prometheus"))
    count = total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.labels.get("model") == "digits" and sample.labels.get("endpoint") == "classify":
                if sample.name == "convscope_batch_size_count":
                    count = sample.value
                elif sample.name == "convscope_batch_size_sum":
                    total = sample.value
    return count, total


def test_a_bad_item_in_a_batch_fails_alone(server, endpoints):
    before = _batch_sizes(server)
    digits = rendered_digits(1)
    requests_ = [dict(data=digits[i][1], headers=JPEG) for i in range(6)]
    requests_[2] = dict(data=b"corrupt", headers=JPEG)
    requests_[4] = dict(files={"data": digits[4][1]}, data={"top_k": "0"})
    with ThreadPoolExecutor(len(requests_)) as pool:
        answers = list(pool.map(lambda kw: server.predict("digits", **kw), requests_))
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 200, 400, 200, 400, 200], [a.text for a in answers]
    for index in (0, 1, 3, 5):  # each good item gets its own answer, as if it came alone
        alone = endpoints["digits"].handle([Payload({"body": digits[index][1]})])[0]
        served = answers[index].json()["predictions"]
        assert [p["class"] for p in served] == [p.class_index for p in alone.predictions]
    after = _batch_sizes(server)
    batches, items = after[0] - before[0], after[1] - before[1]
    assert items == 6 and batches < 6, f"{items} items arrived in {batches} batches: no batching"
