"""Every metric's name, type and label names are pinned here, so a rename breaks this test, not
the dashboard and the alerts in production; every metric and label the rules select exists.

``known_series`` and ``expression_problems`` are shared with test_dashboard.py. The PromQL
reading is lexical (strings, ranges and grouping clauses removed, then every identifier that
is not a function, keyword or number is a metric name); promtool checks the syntax itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import ts
import yaml
from prometheus_client.metrics import MetricWrapperBase

import convscope.metrics
import convscope_gateway.metrics
from tests.unit.test_prometheus_rules import REPO, rules

CONVSCOPE = {
    "convscope_request_duration_seconds": ("histogram", ("model", "endpoint")),
    "convscope_preprocess_duration_seconds": ("histogram", ("model",)),
    "convscope_explanation_duration_seconds": ("histogram", ("model", "method")),
    "convscope_batch_size": ("histogram", ("model", "endpoint")),
    "convscope_errors_total": ("counter", ("model", "endpoint", "type")),
    "convscope_index_operation_duration_seconds": ("histogram", ("model", "op")),
    "convscope_index_entries": ("gauge", ("model",)),
    "convscope_inspect_duration_seconds": ("histogram", ("model", "op")),
    "convscope_activation_store_entries": ("gauge", ("model",)),
    "convscope_index_writes_total": ("counter", ("model", "op", "outcome")),
    "convscope_worker_starts_total": ("counter", ("model", "endpoint")),
    "convscope_gpu_memory_bytes": ("gauge", ("device", "kind")),
}
"""convscope/metrics.py: the engine's, served on the ConvScope metrics port (8083)."""

GATEWAY = {
    "convscope_gateway_requests_total": ("counter", ("service", "method", "code")),
    "convscope_gateway_request_duration_seconds": ("histogram", ("service", "method")),
    "convscope_registration_ready": ("gauge", ("model", "endpoint")),
}
"""convscope_gateway/metrics.py: the gateway's, at /metrics on its HTTP port (8090)."""

_HOST = ("Level", "Hostname")
TORCHSERVE = {
    "Requests2XX": ("counter", _HOST), "Requests4XX": ("counter", _HOST), "Requests5XX": ("counter", _HOST),
    "ts_inference_requests_total": ("counter", ("model_name", "model_version", "hostname")),
    "ts_inference_latency_microseconds": ("counter", ("model_name", "model_version", "hostname")),
    "ts_queue_latency_microseconds": ("counter", ("model_name", "model_version", "hostname")),
    "QueueTime": ("gauge", _HOST), "WorkerThreadTime": ("gauge", _HOST),
    "WorkerLoadTime": ("gauge", ("WorkerName", *_HOST)),
    "CPUUtilization": ("gauge", _HOST), "MemoryUsed": ("gauge", _HOST), "MemoryAvailable": ("gauge", _HOST),
    "MemoryUtilization": ("gauge", _HOST), "DiskUsage": ("gauge", _HOST), "DiskUtilization": ("gauge", _HOST),
    "DiskAvailable": ("gauge", _HOST),
    "GPUMemoryUtilization": ("gauge", ("Level", "DeviceId", "Hostname")),
    "GPUMemoryUsed": ("gauge", ("Level", "DeviceId", "Hostname")),
    "GPUUtilization": ("gauge", ("Level", "DeviceId", "Hostname")),
    "HandlerTime": ("gauge", ("ModelName", "Level", "Hostname")),
    "PredictionTime": ("gauge", ("ModelName", "Level", "Hostname")),
}
"""TorchServe 0.12's frontend metrics (metrics_mode=prometheus, port 8082), as its
ts/configs/metrics.yaml declares them and a live scrape shows them (tests/integration/test_prometheus.py)."""

SCRAPE = {"up": ("gauge", ())}
"""What Prometheus itself adds per target."""
TARGET_LABELS = ("job", "instance")

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}


def pinned() -> dict[str, tuple[str, tuple[str, ...]]]:
    return {**CONVSCOPE, **GATEWAY, **TORCHSERVE, **SCRAPE}


def series_names(name: str, kind: str) -> tuple[str, ...]:
    """The series a metric is queried by: a histogram's _bucket, _sum and _count."""
    return tuple(name + s for s in ("_bucket", "_sum", "_count")) if kind == "histogram" else (name,)


def recorded_labels() -> dict[str, set[str]]:
    """Each recording rule's name and the labels it keeps (its grouping labels and its own)."""
    found: dict[str, set[str]] = {}
    for rule in rules():
        if "record" in rule:
            grouped = {label.strip() for group in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"])
                       for label in group.split(",")} - {"le", ""}
            found.setdefault(rule["record"], set()).update(grouped | set(rule.get("labels", {})))
    return found


def known_series() -> dict[str, set[str]]:
    """Every series name PromQL may select here, and the label names it carries."""
    known = {series: set(labels) | set(TARGET_LABELS) | ({"le"} if series.endswith("_bucket") else set())
             for name, (kind, labels) in pinned().items() for series in series_names(name, kind)}
    return {**known, **recorded_labels()}


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every vector selector in a PromQL expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = []
    for match in re.finditer(r"(?<![\w:.$])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?", text):
        name, matchers, call = match.groups()
        if call or name in KEYWORDS:
            continue
        found.append((name, set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers or ""))))
    return found


def expression_problems(expr: str) -> list[str]:
    """What is wrong with the metrics and labels ``expr`` selects; [] when nothing is."""
    known, found = known_series(), selectors(expr)
    problems = [] if found else [f"selects no metric: {expr}"]
    for name, labels in found:
        if name not in known:
            problems.append(f"unknown metric {name} in: {expr}")
        elif labels - known[name]:
            problems.append(f"{name} has no label {sorted(labels - known[name])} in: {expr}")
    return problems


def registered(module) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The metrics a module defines: exposed name, type and label names."""
    found = {}
    for metric in vars(module).values():
        if isinstance(metric, MetricWrapperBase):
            family = metric.describe()[0]
            name = family.name + ("_total" if family.type == "counter" else "")
            found[name] = (family.type, tuple(metric._labelnames))  # no public accessor for label names
    return found


def test_the_engine_metrics_are_pinned():
    assert registered(convscope.metrics) == CONVSCOPE
    # ... and they are all the registry serves (none defined elsewhere).
    assert {f.name for f in convscope.metrics.REGISTRY.collect()} == {n.removesuffix("_total") for n in CONVSCOPE}


def test_the_gateway_metrics_are_pinned():
    assert registered(convscope_gateway.metrics) == GATEWAY
    assert {f.name for f in convscope_gateway.metrics.REGISTRY.collect()} == {n.removesuffix("_total") for n in GATEWAY}


def test_the_torchserve_names_are_its_metrics_yaml():
    declared = yaml.safe_load((Path(ts.__file__).parent / "configs" / "metrics.yaml").read_text())
    found = {}
    for section, extra in (("ts_metrics", ()), ("model_metrics", ("Hostname",))):  # model metrics get a Hostname
        for kind, metrics in declared[section].items():
            found.update({m["name"]: (kind, tuple(m["dimensions"]) + extra) for m in metrics})
    assert found == TORCHSERVE


def test_the_lexer_finds_metrics_labels_and_skips_the_rest():
    expr = ('histogram_quantile(0.95, sum by (model, le) (rate(a_bucket{model=~"$model", le!="1e3"}[$__rate_interval] '
            'offset 5m))) / on (model) group_left b:c:d or vector(1e3) > bool 0.5 unless e')
    assert selectors(expr) == [("a_bucket", {"model", "le"}), ("b:c:d", set()), ("e", set())]
    assert expression_problems("rate(convscope_errors_total{kind=\"x\"}[5m])") == [
        "convscope_errors_total has no label ['kind'] in: rate(convscope_errors_total{kind=\"x\"}[5m])"]
    assert expression_problems("vector(1)") == ["selects no metric: vector(1)"]


def test_every_rule_selects_only_known_metrics_and_labels():
    problems = [p for rule in rules() for p in expression_problems(rule["expr"])]
    assert problems == []


def test_every_metric_alert_and_recording_rule_is_documented():
    doc = (REPO / "docs" / "observability.md").read_text()
    names = set(pinned()) | {r.get("record") or r["alert"] for r in rules()}
    assert sorted(n for n in names if f"`{n}" not in doc) == []
