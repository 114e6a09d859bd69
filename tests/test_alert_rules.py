"""The alert rules (deploy/prometheus/alerts.yml) are valid and tested: `promtool check rules`
and `promtool test rules` pass, every rule has a test that fires it and one that shows it quiet,
and every metric a rule reads is one the desk exports.

Skipped only when promtool is not installed AND `CI` is not set (Debian's `prometheus` package
has it; `make promtool` installs it; CI runs that first)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
PROMTOOL = os.environ.get("PROMTOOL_PATH") or shutil.which("promtool") or "/usr/bin/promtool"

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists() and not os.environ.get("CI"),
    reason=f"promtool not installed at {PROMTOOL} (Debian's `prometheus`: make promtool; required when CI is set)",
)


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_checks_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass():
    result = subprocess.run([PROMTOOL, "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_has_a_firing_test_and_a_quiet_test():
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test.get("alert_rule_test", [])]
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case.get("exp_alerts") for case in mine), f"{rule['alert']}: no test fires it"
        assert any(not case.get("exp_alerts") for case in mine), f"{rule['alert']}: no test shows it quiet"


def test_every_metric_a_rule_reads_is_exported():
    exported = (ROOT / "config" / "metrics.py").read_text() + (ROOT / "config" / "observability.py").read_text()
    for rule in _rules():
        for name in set(re.findall(r"\btradedesk_[a-z_]+", rule["expr"])):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert f'"{base}"' in exported, f"{rule['alert']} reads {name}, which the desk does not export"


def test_every_metric_the_dashboard_reads_is_exported():
    import json

    exported = (ROOT / "config" / "metrics.py").read_text() + (ROOT / "config" / "observability.py").read_text()
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "tradedesk.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(exprs) > 20
    for expr in exprs:
        for name in set(re.findall(r"\btradedesk_[a-z_]+", expr)):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert f'"{base}"' in exported, f"the dashboard reads {name}, which the desk does not export"
