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
    "Duration of one explanation (saliency or CAM) by method.",
    ["model", "method"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

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
    "Time inside the feature index per operation (search; add and delete include the durable "
    "commit, i.e. the log fsync), per call.",
    ["model", "op"], buckets=LATENCY_BUCKETS, registry=REGISTRY)

INDEX_ENTRIES = Gauge(
    "convscope_index_entries",
    "Entries in the model's feature index, as its (single) writer last saw them.",
    ["model"], multiprocess_mode="livemostrecent", registry=REGISTRY)


def render() -> bytes:
    """Prometheus text exposition of all ConvScope metrics, across worker processes if shared."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
