"""The alert consumers in deploy/: Prometheus rules (checked and unit-tested by promtool), the
Prometheus config of docker-compose.yml, and the Grafana dashboard, whose every query must
be valid PromQL over metrics driftloop exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import streaming.metrics  # noqa: F401 - registers every driftloop metric

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "driftloop.json"
TOOLS = ROOT / ".driftloop" / "tools"


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool from PATH, else from Debian's prometheus package, unpacked under .driftloop/tools
    (`apt-get download`: no root, nothing installed). Fails, never skips, when neither works."""
    unpacked = TOOLS / "usr" / "bin" / "promtool"
    found = shutil.which("promtool") or (str(unpacked) if unpacked.exists() else None)
    if found:
        return found
    TOOLS.mkdir(parents=True, exist_ok=True)
    download = subprocess.run(
        ["apt-get", "download", "prometheus"], cwd=TOOLS, capture_output=True, text=True, timeout=300
    )
    debs = sorted(TOOLS.glob("prometheus_*.deb"))
    assert debs, (
        f"promtool is needed: install Debian's prometheus package (apt-get download said: {download.stderr})"
    )
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(TOOLS)], check=True, timeout=120)
    return str(TOOLS / "usr" / "bin" / "promtool")


def run(promtool: str, *args: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported_metrics() -> set[str]:
    """Every series name driftloop's metrics can produce (labelled ones included before use)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("driftloop_")
        for suffix in suffixes.get(family.type, [""])
    }


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_the_rules_pass_promtool_and_their_unit_tests(promtool: str) -> None:
    assert "SUCCESS" in run(promtool, "check", "rules", "driftloop.rules.yml")
    assert "SUCCESS" in run(promtool, "test", "rules", "driftloop.rules.test.yml")
    assert "valid prometheus config" in run(promtool, "check", "config", "prometheus.yml")


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(queries)} rules found" in run(
        promtool, "check", "rules", "dashboard.rules.yml", cwd=tmp_path
    )


def test_rules_and_dashboard_use_only_metrics_driftloop_exports() -> None:
    exported = exported_metrics()
    recorded = set(re.findall(r"record: (\S+)", (PROMETHEUS / "driftloop.rules.yml").read_text()))
    text = (PROMETHEUS / "driftloop.rules.yml").read_text() + "\n".join(dashboard_queries())
    used = set(re.findall(r"\bdriftloop_[a-z_]+\b", text))
    assert used, "no driftloop metric referenced"
    assert used <= exported, f"not exported by driftloop: {sorted(used - exported)}"
    assert set(re.findall(r"\bdriftloop:[a-z_0-9:]+", "\n".join(dashboard_queries()))) <= recorded


def test_docker_compose_runs_prometheus_with_the_rules_and_grafana_with_the_dashboard() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert any("driftloop.json" in v for v in services["grafana"]["volumes"])
    assert services["monitor"]["command"] == ["driftloop", "monitor"]
