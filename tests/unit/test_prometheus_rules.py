"""deploy/prometheus/: the scrape config, the rules and the rules' own unit tests pass promtool;
the committed config scrapes the default ports; the label values the rules name are the code's.

Also the helpers the other observability tests share: ``promtool``, ``render_config`` (the
scrape config for a server on other ports) and ``rules`` (every rule in alerts.yml)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from convscope.errors import ServiceError
from convscope.explain import METHODS
from convscope.serving import DEFAULT_PORTS

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
CONFIG, RULES, RULE_TESTS = (PROMETHEUS_DIR / name for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml"))
JOB_PORTS = {"torchserve": "metrics", "convscope": "convscope_metrics", "convscope-gateway": "gateway_http"}
"""Each scrape job and the listener it scrapes (names of ``convscope.serving.DEFAULT_PORTS``)."""
HEAVY_METHODS = re.compile(r'method(=~|!~)"([^"]*)"')


def promtool(*args: str | Path, cwd: Path = PROMETHEUS_DIR) -> str:
    """Run promtool; its output. Skips only where promtool is not installed."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is missing: `make setup` installs the Debian package prometheus")
    done = subprocess.run([binary, *map(str, args)], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def render_config(ports: dict[str, int], interval: str = "15s", rule_file: Path | str = RULES) -> str:
    """prometheus.yml with each job scraping its listener on ``ports`` (loopback), scrapes and
    rule evaluations every ``interval``, and the rule file at ``rule_file``."""
    config = yaml.safe_load(CONFIG.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rule_file)]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[JOB_PORTS[job['job_name']]]}"]}]
    return yaml.safe_dump(config, sort_keys=False)


def rules() -> list[dict]:
    """Every recording rule and alert in alerts.yml."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_the_rendered_config_is_valid(tmp_path):
    path = tmp_path / "prometheus.yml"
    path.write_text(render_config(DEFAULT_PORTS, "1s", RULES))
    assert "SUCCESS" in promtool("check", "config", path, cwd=tmp_path)


def test_the_committed_config_scrapes_the_default_ports_with_the_rules():
    committed = yaml.safe_load(CONFIG.read_text())
    assert committed == yaml.safe_load(render_config(DEFAULT_PORTS, "15s", "alerts.yml"))
    assert {job["job_name"] for job in committed["scrape_configs"]} == set(JOB_PORTS)


def test_the_rules_are_valid():
    promtool("check", "rules", RULES)


def test_the_rules_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS)


def test_every_alert_has_for_a_severity_and_annotations_naming_its_subject():
    for name, rule in alerts().items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        for text in (rule["annotations"]["summary"], rule["annotations"]["description"]):
            assert re.search(r"\$labels\.\w+", text), f"{name}: {text!r} names no label"


def test_every_alert_is_unit_tested_firing_and_quiet():
    cases = [case for group in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in group["alert_rule_test"]]
    for name in alerts():
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in cases), f"{name} never fires"
        assert any(c["alertname"] == name and not c.get("exp_alerts") for c in cases), f"{name} is never quiet"


def _types_matched(record: str) -> set[str]:
    expr = next(rule["expr"] for rule in rules() if rule.get("record") == record)
    return set(re.search(r'type=~"([^"]+)"', expr).group(1).split("|"))


def test_the_error_type_lists_are_the_codes_server_and_client_errors():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    types = list(subclasses(ServiceError))
    assert _types_matched("convscope:server_errors:ratio_rate5m") == {t.__name__ for t in types if t.status >= 500}
    assert _types_matched("convscope:client_errors:ratio_rate5m") == {t.__name__ for t in types if t.status < 500}


def test_the_heavy_methods_are_methods_and_split_the_latency_alerts():
    fast = HEAVY_METHODS.search(alerts()["ConvScopeExplanationSlow"]["expr"]).groups()
    heavy = HEAVY_METHODS.search(alerts()["ConvScopeHeavyExplanationSlow"]["expr"]).groups()
    assert fast[0] == "!~" and heavy[0] == "=~" and fast[1] == heavy[1]
    assert set(heavy[1].split("|")) == {"smoothgrad", "integrated_gradients", "occlusion", "scorecam"} < set(METHODS)
