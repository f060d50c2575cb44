"""Every Prometheus metric of the engine, in one place.

Names are unit-suffixed and labels bounded (model names come from the model store, endpoint
and method names from fixed lists, error types from the ``ServiceError`` classes). The metrics
live in ``REGISTRY``, never in the global default registry. When TorchServe runs several worker
processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by the launcher before workers start) makes
prometheus_client share values through files, and ``render()`` aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)
"""Seconds, ~1 ms to 120 s: classification sits at the low end, Score-CAM at the high end."""
BUCKETS_VARIABLE = "CONVSCOPE_EXPLANATION_BUCKETS"


def parse_buckets(text: str | None, default: tuple[float, ...] = LATENCY_BUCKETS) -> tuple[float, ...]:
    """``"0.01,0.1,1,10"`` -> increasing positive upper bounds in seconds (``+Inf`` is implied).
    Set by ``convscope-serve --explanation-buckets`` for the workers before they start, and read
    once, when this module is imported: a histogram's buckets cannot change while it lives."""
    if not text:
        return default
    try:
        bounds = tuple(float(b) for b in text.split(","))
    except ValueError:
        raise ValueError(f"{BUCKETS_VARIABLE}={text!r}: a comma-separated list of seconds") from None
    if not bounds or any(b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise ValueError(f"{BUCKETS_VARIABLE}={text!r}: bounds must be positive and increasing")
    return bounds


EXPLANATION_BUCKETS = parse_buckets(os.environ.get(BUCKETS_VARIABLE))

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_DURATION = Histogram(
    "convscope_request_duration_seconds",
    "Engine time of one batched call per endpoint (decode to encoded result), per item.",
    ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

PREPROCESS_DURATION = Histogram(
    "convscope_preprocess_duration_seconds",
    "Decode, validate and tensorise one image.",
    ["model"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

EXPLANATION_DURATION = Histogram(
    "convscope_explanation_duration_seconds",
    "Duration of one explanation (saliency or CAM) by method (buckets: --explanation-buckets).",
    ["model", "method"], buckets=EXPLANATION_BUCKETS, registry=REGISTRY)

BATCH_SIZE = Histogram(
    "convscope_batch_size",
    "Items per batch that reached the engine.",
    ["model", "endpoint"], buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=REGISTRY)

ERRORS = Counter(
    "convscope_errors_total",
    "Failed items by error type (BadRequest, InvalidImage, PayloadTooLarge, ...).",
    ["model", "endpoint", "type"], registry=REGISTRY)

INDEX_OPERATION_DURATION = Histogram(
    "convscope_index_operation_duration_seconds",
    "Time inside the feature index per operation (search, stats, project; add and delete include "
    "the durable commit, i.e. the log fsync), per call.",
    ["model", "op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

INSPECT_DURATION = Histogram(
    "convscope_inspect_duration_seconds",
    "Duration of one <m>-inspect operation (layers, feature_maps, filters, top_examples).",
    ["model", "op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
ACTIVATION_STORE_ENTRIES = Gauge(
    "convscope_activation_store_entries",
    "Gallery images in the model's top-activation store, as its (single) writer last saw them.",
    ["model"], multiprocess_mode="livemostrecent", registry=REGISTRY)
INDEX_ENTRIES = Gauge(
    "convscope_index_entries",
    "Entries in the model's feature index, as its (single) writer last saw them.",
    ["model"], multiprocess_mode="livemostrecent", registry=REGISTRY)


INDEX_WRITES = Counter(
    "convscope_index_writes_total",
    "Entries written to the feature index by op (add, delete) and outcome: ok, rejected (the "
    "client's error: unknown id, bad vector) or failed (the index could not take it).",
    ["model", "op", "outcome"], registry=REGISTRY)

WORKER_STARTS = Counter(
    "convscope_worker_starts_total",
    "Workers that loaded their model, by endpoint; an increase after start-up is a restart.",
    ["model", "endpoint"], registry=REGISTRY)

GPU_MEMORY = Gauge(
    "convscope_gpu_memory_bytes",
    "GPU memory held by the workers on each device (torch's allocated and reserved), summed over "
    "the live worker processes; absent without a GPU.",
    ["device", "kind"], multiprocess_mode="livesum", registry=REGISTRY)


def observe_gpu_memory(device) -> None:
    """Record ``device``'s memory after a batch (a no-op on the CPU)."""
    if device.type != "cuda":
        return
    import torch

    name = f"cuda:{device.index or 0}"
    GPU_MEMORY.labels(name, "allocated").set(torch.cuda.memory_allocated(device))
    GPU_MEMORY.labels(name, "reserved").set(torch.cuda.memory_reserved(device))


def render() -> bytes:
    """Prometheus text exposition of all ConvScope metrics, across worker processes if shared."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
