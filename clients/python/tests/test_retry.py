"""Retries against real local servers, counting the attempts they receive: only 503 /
UNAVAILABLE and refused connections are retried, with growing, jittered pauses."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from client_fakes import Answer, FakeGrpc, FakeRest
from conftest import Target

from convscope_client import DeadlineExceeded, InvalidArgument, Unavailable
from convscope_client._retry import RetryPolicy
from convscope_client.errors import make_error

IMAGE = b"\x89PNG\r\n\x1a\nseven"


def _unavailable(target) -> Answer:
    return Answer(503, {"code": 503, "type": "ServiceUnavailableException", "message": "busy"}, "UNAVAILABLE")


def test_unavailable_then_success_is_retried(target, mode):
    target.server.answers.extend([_unavailable(target), _unavailable(target)])
    result = target.call("classify", "digits", IMAGE, mode=mode)
    assert result.predictions[0].label == "7"
    assert len(target.server.seen) == 3


def test_retries_run_out(target, mode):
    target.server.answers.extend([_unavailable(target)] * 5)
    with pytest.raises(Unavailable) as error:
        target.call("classify", "digits", IMAGE, mode=mode, options={"retries": 2})
    assert error.value.retryable and len(target.server.seen) == 3


def test_zero_retries_means_one_attempt(target):
    target.server.answers.append(_unavailable(target))
    with pytest.raises(Unavailable):
        target.call("classify", "digits", IMAGE, options={"retries": 0})
    assert len(target.server.seen) == 1


def test_bad_input_is_never_retried(target, mode):
    target.server.answers.append(
        Answer(400, {"code": 400, "type": "InvalidImage", "message": "not an image"}, "INVALID_ARGUMENT"))
    with pytest.raises(InvalidArgument):
        target.call("classify", "digits", IMAGE, mode=mode)
    assert len(target.server.seen) == 1


def test_a_deadline_is_never_retried(target, mode):
    target.server.answers.append(Answer(delay=0.6))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        target.call("classify", "digits", IMAGE, mode=mode, options={"timeout": 0.2})
    assert time.monotonic() - started < 0.5  # the timeout cut the call short
    time.sleep(0.3)  # a retry (milliseconds after the deadline) would have arrived by now
    assert len(target.server.seen) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake(transport: str, port: int) -> FakeRest | FakeGrpc:
    return FakeRest(port) if transport == "rest" else FakeGrpc(port)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_a_refused_connection_is_retryable(transport, mode):
    with pytest.raises(Unavailable) as error:
        Target(transport, None, f"127.0.0.1:{_free_port()}").call(
            "classify", "digits", IMAGE, mode=mode, options={"retries": 0})
    assert error.value.retryable
    assert error.value.type == ("ConnectError" if transport == "rest" else "Unavailable")


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_a_refused_connection_is_retried_until_the_server_is_up(transport, mode):
    """Nothing listens at first; the server comes up on that port 0.3 s later, within the
    retries' pauses, and the call succeeds."""
    port, late = _free_port(), []
    timer = threading.Timer(0.3, lambda: late.append(_fake(transport, port)))
    timer.start()
    try:
        result = Target(transport, None, f"127.0.0.1:{port}").call(
            "classify", "digits", IMAGE, mode=mode, options={"retries": 8, "backoff": 0.05})
    finally:
        timer.join()
        for server in late:
            server.close()
    assert result.predictions and len(late[0].seen) == 1


def test_pauses_grow_and_are_jittered():
    policy = RetryPolicy(retries=4, backoff=0.1)
    busy = make_error(503, "Busy", "m", retryable=True)
    pauses = [[policy.pause(busy, attempt) for attempt in range(4)] for _ in range(200)]
    for attempt in range(4):
        seen = [p[attempt] for p in pauses]
        ceiling = 0.1 * 2 ** attempt
        assert all(ceiling / 2 <= p <= ceiling for p in seen)
        assert len(set(seen)) > 100  # jitter
    assert policy.pause(busy, 4) is None
    assert policy.pause(make_error(400, "BadRequest", "m"), 0) is None
    assert policy.pause(make_error(504, "Timeout", "m"), 0) is None
