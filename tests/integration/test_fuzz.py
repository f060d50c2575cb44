"""Bad input at scale, the fast version (issue 8, item 1): a few hundred seeded bad and
borderline requests (tests/fuzzing.py) over every endpoint of a real TorchServe. No 5xx, no
dropped connection, every 4xx a ``{"code", "type", "message"}`` document, no worker restarted;
good items batched together with bad ones answer 200 with their own result; the typed gRPC
gateway answers the same bad images with INVALID_ARGUMENT, never INTERNAL or UNKNOWN.
The full run (2,000+ per endpoint) is ``benchmarks/fuzz.py``."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests
from convscope_client._proto import convscope_pb2 as pb
from convscope_client._proto import convscope_pb2_grpc as pb_grpc

from tests import fuzzing
from tests.imaging import rendered_digits

pytestmark = pytest.mark.integration

SEED = 8
PER_ENDPOINT = 30  # x 12 endpoints = 360 requests
JPEG = {"Content-Type": "image/jpeg"}


def worker_starts(server) -> float:
    text = requests.get(server.metrics_url, timeout=10).text
    return sum(float(v) for v in re.findall(r"^convscope_worker_starts_total\{[^}]*\} (\S+)$", text, re.M))


def all_pids(server) -> dict[str, list[int]]:
    return {name: sorted(w["pid"] for w in server.workers(name)) for name in fuzzing.ENDPOINTS}


@pytest.fixture(scope="module")
def fuzzed(server):
    """Send the seeded cases, 8 at a time; (cases, answers, pids before, starts before)."""
    pids, starts = all_pids(server), worker_starts(server)
    cases = fuzzing.cases(SEED, PER_ENDPOINT)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda case: fuzzing.send(server.predict, case), cases))
    yield cases, answers, pids, starts
    for case, (status, _) in zip(cases, answers):  # leave the index as it was
        if status is not None and 200 <= status < 300:
            for entry in fuzzing.added_ids(case):
                server.predict(f"{case.model}-neighbours", json={"op": "delete", "id": entry})


def test_the_generator_is_deterministic_and_covers_every_endpoint():
    first, again = fuzzing.cases(SEED, 12), fuzzing.cases(SEED, 12)
    assert [(c.name, c.endpoint, repr(c.kwargs)) for c in first] == [(c.name, c.endpoint, repr(c.kwargs)) for c in again]
    assert {c.endpoint for c in first} == set(fuzzing.ENDPOINTS)
    assert [c.name for c in fuzzing.cases(SEED + 1, 12)] != [c.name for c in first]


def test_no_5xx_no_dropped_connection_and_every_4xx_is_a_clear_document(fuzzed):
    cases, answers, _, _ = fuzzed
    problems = [f"{c.endpoint} / {c.name}: {fuzzing.verdict(c, status, body)}"
                for c, (status, body) in zip(cases, answers) if fuzzing.verdict(c, status, body)]
    statuses = sorted({status for status, _ in answers if status is not None})
    assert not problems, f"{len(problems)} of {len(cases)} unacceptable (statuses seen {statuses}):\n" + "\n".join(problems)
    assert any(status == 200 for status, _ in answers) and any(status == 400 for status, _ in answers)


def test_no_worker_died_or_restarted(server, fuzzed):
    _, _, pids, starts = fuzzed
    assert all_pids(server) == pids, "a worker died or restarted during the fuzz run"
    assert worker_starts(server) == starts
    for name in fuzzing.ENDPOINTS:
        assert all(w["status"] == "READY" for w in server.workers(name)), name


def test_good_items_batched_with_bad_ones_answer_200_with_their_own_result(server, fuzzed):
    """``digits`` waits 300 ms to fill a batch of 8: each round of 8 concurrent requests lands
    in one or two batches, half of them bad (the fuzzer's certainly-wrong and mutated inputs)."""
    digits = rendered_digits(1)
    alone = {}
    for label, image in digits[:4]:
        answer = server.predict("digits", data=image, headers=JPEG)
        assert answer.status_code == 200, answer.text
        alone[label] = answer.json()["predictions"]
    bad = [c for c in fuzzing.cases_for("digits", 200, SEED + 1)
           if c.must_fail or c.family in ("image", "json", "multipart", "content-type")][:24]
    for start in range(0, len(bad), 4):
        mixed: list[tuple[int | None, dict]] = []
        for offset, case in enumerate(bad[start:start + 4]):
            label, image = digits[(start + offset) % 4]
            mixed += [(label, dict(data=image, headers=JPEG)), (None, case.kwargs)]
        with ThreadPoolExecutor(len(mixed)) as pool:
            answers = list(pool.map(lambda item: server.predict("digits", **item[1]), mixed))
        for (label, _), answer in zip(mixed, answers):
            assert answer.status_code < 500, answer.text
            if label is not None:
                assert answer.status_code == 200, answer.text
                served = answer.json()["predictions"]  # batched maths may differ in the last bits
                assert [p["class"] for p in served] == [p["class"] for p in alone[label]]
                assert [p["score"] for p in served] == pytest.approx([p["score"] for p in alone[label]], abs=1e-4)


# --------------------------------------------------------------------------------------------
# The typed gateway: the same bad images

RPC = {"classify": ("Classify", lambda m, img: pb.ClassifyRequest(model=m, image=pb.Image(data=img), top_k=3)),
       "features": ("Features", lambda m, img: pb.FeaturesRequest(model=m, image=pb.Image(data=img))),
       "saliency": ("Saliency", lambda m, img: pb.SaliencyRequest(model=m, image=pb.Image(data=img))),
       "cam": ("Cam", lambda m, img: pb.CamRequest(model=m, image=pb.Image(data=img))),
       "neighbours": ("Neighbours", lambda m, img: pb.NeighboursRequest(model=m, probe=pb.Probe(image=pb.Image(data=img)), k=3)),
       "inspect": ("FeatureMaps", lambda m, img: pb.FeatureMapsRequest(model=m, image=pb.Image(data=img), top=2,
                                                                     outputs=[pb.INSPECT_OUTPUT_RAW]))}
ACCEPTABLE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


def test_the_typed_gateway_answers_bad_images_with_invalid_argument(server):
    token = (("authorization", f"Bearer {server.running.keys['inference']}"),)
    cases = [c for c in fuzzing.cases(SEED + 2, 12) if c.image is not None and c.family in ("image", "tiny")][:60]
    assert len(cases) >= 30
    channel = grpc.insecure_channel(f"127.0.0.1:{server.running.ports['gateway_grpc']}")
    stub = pb_grpc.ConvScopeStub(channel)

    def call(case):
        rpc, make = RPC[case.kind]
        try:
            getattr(stub, rpc)(make(case.model, case.image), metadata=token, timeout=120)
            return None
        except grpc.RpcError as error:
            return error.code(), error.details()

    try:
        with ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(call, cases))
    finally:
        channel.close()
    wrong = [f"{c.endpoint} / {c.name}: {o}" for c, o in zip(cases, outcomes) if o is not None and o[0] not in ACCEPTABLE]
    assert not wrong, "\n".join(wrong)
    assert any(o is not None and o[0] == grpc.StatusCode.INVALID_ARGUMENT for o in outcomes)
