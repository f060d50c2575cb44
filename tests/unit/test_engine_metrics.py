"""The engine's metrics that operators page on: index writes by outcome, worker starts (a
restart is an increase), configurable explanation buckets, GPU memory only where there is a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from convscope import metrics
from convscope.config import EngineConfig
from convscope.endpoints import build_endpoint
from convscope.index import open_index, storage
from convscope.spec import IndexSpec
from tests.payloads import json_payload as _json
from tests.imaging import rendered_digits


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0



def test_index_writes_are_counted_by_outcome(digits_model, tmp_path, monkeypatch):
    writes = {o: _value("convscope_index_writes_total", model="digits", op=op, outcome=o)
              for o, op in (("ok", "add"), ("rejected", "delete"), ("failed", "add"))}
    starts = _value("convscope_worker_starts_total", model="digits", endpoint="neighbours")
    with open_index(IndexSpec(), digits_model.layers.feature_dim, tmp_path, "digits") as index:
        endpoint = build_endpoint("neighbours", digits_model, EngineConfig(), index)
        assert _value("convscope_worker_starts_total", model="digits", endpoint="neighbours") == starts + 1
        images = [png for _, png in rendered_digits(1, seed=3)[:2]]
        endpoint.handle([_json(op="add", id="m/0", image=images[0]), _json(op="add", id="m/1", image=images[1])])
        assert _value("convscope_index_writes_total", model="digits", op="add", outcome="ok") == writes["ok"] + 2
        (missing,) = endpoint.handle([_json(op="delete", id="nobody")])
        assert missing.status == 404
        assert _value("convscope_index_writes_total", model="digits", op="delete", outcome="rejected") == \
            writes["rejected"] + 1

        def full(_fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(storage.os, "fsync", full)
        (failed,) = endpoint.handle([_json(op="add", id="m/2", image=images[0])])
        assert failed.status == 503
        assert _value("convscope_index_writes_total", model="digits", op="add", outcome="failed") == \
            writes["failed"] + 1


@pytest.mark.parametrize("text, expected", [(None, metrics.LATENCY_BUCKETS), ("", metrics.LATENCY_BUCKETS),
                                            ("0.01,0.1,1,10", (0.01, 0.1, 1.0, 10.0))])
def test_buckets_parse(text, expected):
    assert metrics.parse_buckets(text) == expected


@pytest.mark.parametrize("text", ["1,0.5", "0,1", "-1,2", "a,b", "1,1"])
def test_bad_buckets_are_refused(text):
    with pytest.raises(ValueError, match=metrics.BUCKETS_VARIABLE):
        metrics.parse_buckets(text)


def test_the_workers_read_the_explanation_buckets_when_they_start():
    code = ("from convscope import metrics; metrics.EXPLANATION_DURATION.labels('m', 'x').observe(0.2);"
            "print(metrics.REGISTRY.get_sample_value('convscope_explanation_duration_seconds_bucket',"
            " {'model': 'm', 'method': 'x', 'le': '0.25'}), metrics.EXPLANATION_BUCKETS)")
    env = {**os.environ, metrics.BUCKETS_VARIABLE: "0.25,2,20"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(None, 1) == ["1.0", "(0.25, 2.0, 20.0)\n"]


def test_gpu_memory_is_only_reported_for_a_gpu():
    before = {s.labels.get("device") for m in metrics.GPU_MEMORY.collect() for s in m.samples}
    metrics.observe_gpu_memory(torch.device("cpu"))
    after = {s.labels.get("device") for m in metrics.GPU_MEMORY.collect() for s in m.samples}
    assert after == before and not any(d and d.startswith("cpu") for d in after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine: checked on a GPU machine only")
def test_gpu_memory_is_reported_per_device():
    device = torch.device("cuda", 0)
    keep = torch.ones(1024, 1024, device=device)
    metrics.observe_gpu_memory(device)
    assert _value("convscope_gpu_memory_bytes", device="cuda:0", kind="allocated") >= keep.numel() * 4

