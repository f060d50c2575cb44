"""The short, deterministic versions of the load and soak runs (benchmarks/load.py and
benchmarks/soak.py hold the long ones): the load generator against the real server over REST
and gRPC, the process sampling the soak relies on, and overload over gRPC."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.loadgen import DEADLINES, client_for, closed_loop, open_loop
from benchmarks.procs import group_usage, server_processes
from benchmarks.soak import drift
from tests.imaging import held_out_digits

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def digits():
    return [png for _, png in held_out_digits(1)]


def run_closed(server, protocol, endpoint, images, concurrency=4, seconds=3.0, deadline=None):
    async def go():
        client = client_for(server.running, protocol)
        try:
            return await closed_loop(client, endpoint, "digits", images, concurrency, seconds, deadline)
        finally:
            await client.close()
    return asyncio.run(go())


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("endpoint", ["classify", "neighbours"])
def test_a_short_load_is_served_without_errors(server, digits, protocol, endpoint):
    tally = run_closed(server, protocol, endpoint, digits)
    summary = tally.summary()
    assert summary["failed"] == 0, summary
    assert summary["answered"] >= 10 and summary["throughput"] > 3, summary
    assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= DEADLINES[endpoint] * 1e3


def test_an_answer_past_its_deadline_counts_as_an_error(server, digits):
    """The capacity search relies on this: a caller with a deadline has given up on a late answer."""
    tally = run_closed(server, "rest", "classify", digits, concurrency=1, seconds=1.0, deadline=1e-4)
    assert tally.answered == 0 and tally.errors == {"late": tally.failed} and tally.failed >= 2  # digits waits 300 ms for a batch here


def test_the_soak_sees_every_process_group_and_their_usage(server, digits):
    groups = server_processes(server.running)
    # the session server: 10 registrations, digits-features with two workers
    assert len(groups["frontend"]) == 1 and len(groups["gateway"]) == 1
    assert len(groups["workers"]) == len(server.running.names) + 1
    usage = group_usage(groups)
    assert all(rss > 10 * 2**20 and fds > 3 for rss, fds in usage.values()), usage

    async def go():
        clients = {p: client_for(server.running, p) for p in ("rest", "grpc")}
        try:
            return await open_loop(clients, {("classify", "rest"): 10, ("classify", "grpc"): 10},
                                   "digits", digits, 2.0)
        finally:
            for client in clients.values():
                await client.close()

    samples = [(0.0, usage)]
    tallies = asyncio.run(go())
    samples.append((1.0, group_usage(server_processes(server.running))))
    assert all(t.failed == 0 and 15 <= t.answered <= 21 for t in tallies.values()), tallies
    result = drift(samples)
    assert set(result) == {"frontend", "workers", "gateway"}
    assert all(abs(g["rss_drift"]) < 1 for g in result.values()), result
    assert server_processes(server.running)["workers"] == groups["workers"]  # no worker restarted


def test_overload_over_grpc_is_unavailable_not_internal(server, digits):
    """Score-CAM beyond TorchServe's job queue (100) through the typed gateway: the excess gets
    UNAVAILABLE / 503 (retryable) fast, never INTERNAL, and the next call is served."""
    async def burst():
        client = client_for(server.running, "grpc")
        try:
            async def one():
                try:
                    await client.cam("digits", digits[0], method="scorecam")
                    return 200
                except Exception as exc:  # noqa: BLE001 - the status is what is checked
                    return getattr(exc, "status", type(exc).__name__)
            statuses = await asyncio.gather(*(one() for _ in range(220)))
            after = await client.classify("digits", digits[0])
            return statuses, after
        finally:
            await client.close()

    statuses, after = asyncio.run(burst())
    assert set(statuses) <= {200, 503}, sorted(set(map(str, statuses)))
    assert statuses.count(503) > 0 and statuses.count(200) >= 100
    assert after.predictions
