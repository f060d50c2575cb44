"""deploy/grafana/convscope.json, checked structurally: unique panel ids, every panel titled and
queried, every query selecting only metrics and labels that exist (recording rules resolved),
valid PromQL (promtool), every template variable used defined, and the panels issue 7 asks for."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.unit.test_metric_names import expression_problems, known_series, selectors
from tests.unit.test_prometheus_rules import REPO, promtool

DASHBOARD = REPO / "deploy" / "grafana" / "convscope.json"
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
SAMPLE_VALUES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
REQUIRED = {
    "request rate per endpoint": "convscope_request_duration_seconds_count",
    "errors per endpoint": "convscope_errors_total",
    "explanation latency heatmap": "convscope_explanation_duration_seconds_bucket",
    "explanation p50": "convscope:explanation_duration_seconds:p50_5m",
    "explanation p95": "convscope:explanation_duration_seconds:p95_5m",
    "explanation p99": "convscope:explanation_duration_seconds:p99_5m",
    "queue time": "ts_queue_latency_microseconds",
    "batch size": "convscope_batch_size_count",
    "index size": "convscope_index_entries",
    "index writes": "convscope_index_writes_total",
    "GPU memory": "convscope_gpu_memory_bytes",
    "gateway calls and codes": "convscope_gateway_requests_total",
    "readiness": "convscope_registration_ready",
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    return [p for top in dashboard["panels"] for p in (top, *top.get("panels", ()))]


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", ())]


def test_panels_have_unique_ids_titles_queries_and_fit_the_grid(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert dashboard["schemaVersion"] >= 39
    for panel in panels(dashboard):
        assert panel["title"].strip(), panel["id"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        targets = panel["targets"]
        assert targets and all(t["expr"].strip() for t in targets), panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for source in (panel["datasource"], *(t["datasource"] for t in targets)):
            assert source == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]


def test_every_query_selects_known_metrics_and_labels(dashboard):
    problems = [f"{title}: {p}" for title, expr in queries(dashboard) for p in expression_problems(expr)]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            selector, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["definition"]).groups()
            problems += [f"${variable['name']}: {p}" for p in expression_problems(selector)]
            problems += [f"${variable['name']}: no label {label} on {name}" for name, _ in selectors(selector)
                         if label not in known_series().get(name, {label})]
    assert problems == []


def test_every_query_is_valid_promql(dashboard, tmp_path):
    def concrete(expr: str) -> str:
        for name, value in SAMPLE_VALUES.items():
            expr = expr.replace(name, value)
        return VARIABLE.sub("x", expr)

    records = [{"record": f"dashboard:query_{i}", "expr": concrete(expr)}
               for i, (_, expr) in enumerate(queries(dashboard))]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    promtool("check", "rules", path, cwd=tmp_path)


def test_template_variables_used_are_defined_and_defined_ones_used(dashboard):
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    text = json.dumps([dashboard["panels"], [v.get("definition", "") for v in dashboard["templating"]["list"]]])
    used = {next(filter(None, m.groups())) for m in VARIABLE.finditer(text)} - {name[1:] for name in SAMPLE_VALUES}
    assert used == defined
    datasource = next(v for v in dashboard["templating"]["list"] if v["name"] == "DS_PROMETHEUS")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")


def test_the_dashboard_shows_what_operators_need(dashboard):
    shown = {name for _, expr in queries(dashboard) for name, _ in selectors(expr)}
    assert {what: metric for what, metric in REQUIRED.items() if metric not in shown} == {}
    heatmaps = [p for p in panels(dashboard) if p["type"] == "heatmap"]
    assert [t["format"] for p in heatmaps for t in p["targets"]] == ["heatmap"]
