"""The monitoring that docker-compose.yml runs (deploy/): Prometheus's configuration and alert
rules pass Debian's ``promtool``, it scrapes every service on the port the service serves on,
and the Grafana dashboard's queries are valid PromQL naming only metrics the services serve.
(There is no Docker here: this is what can be checked without running Prometheus itself.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from meterline import metrics
from meterline.metrics import endpoints
from meterline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pipeline.json"
REGISTRIES = {"simulators": metrics.SIMULATORS, "gateway": metrics.GATEWAY,
              "bridge": metrics.BRIDGE, "rating": metrics.RATING, "api": metrics.API,
              "notifier": metrics.NOTIFIER, "scheduler": metrics.SCHEDULER}
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count")}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make test-deps` installs Debian's package prometheus")
    return found


def served_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name a registry serves, whether or not a labelled series exists yet."""
    return {family.name + suffix for family in registry.collect()
            for suffix in _SUFFIXES[family.type]}


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def promtool_check(promtool: str, *args: str) -> None:
    done = subprocess.run([promtool, "check", *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_configuration_and_alert_rules_pass_promtool(
    promtool: str, tmp_path: Path
) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    # the rules file sits where docker-compose.yml mounts it; here, next to the copy
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    promtool_check(promtool, "config", str(tmp_path / "prometheus.yml"))
    promtool_check(promtool, "rules", str(DEPLOY / "prometheus" / "rules.yml"))


def test_prometheus_scrapes_every_service_where_it_serves_its_metrics() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    served = endpoints(Settings(_env_file=None))
    assert set(targets) == set(served) == set(REGISTRIES)
    for service, url in served.items():
        port = url.rsplit(":", 1)[1]
        assert targets[service] == [f"{service}:{port}"], service


def test_docker_compose_mounts_the_monitoring_files_that_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounted = [volume.split(":")[0] for name in ("prometheus", "grafana")
               for volume in compose["services"][name]["volumes"] if volume.startswith("./")]
    assert mounted
    for path in mounted:
        assert (ROOT / path).exists(), path
    for service in REGISTRIES:  # Prometheus reaches them across containers
        env: dict[str, Any] = compose["services"][service].get("environment", {})
        merged = {**compose["x-meterline"]["environment"], **env}
        assert merged["METERLINE_METRICS_HOST"] == "0.0.0.0", service


def test_dashboard_queries_are_promql_naming_only_metrics_the_services_serve(
    promtool: str, tmp_path: Path
) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    # promtool parses PromQL in recording rules; Grafana's interval variable made concrete
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": q.replace("$__rate_interval", "1m")}
        for n, q in enumerate(queries)]}]}
    (tmp_path / "dashboard_rules.yml").write_text(yaml.safe_dump(rules))
    promtool_check(promtool, "rules", str(tmp_path / "dashboard_rules.yml"))

    served = set().union(*(served_names(r) for r in REGISTRIES.values()))
    named = {name for q in queries
             for name in re.findall(r"\b(?:meterline|process)_[a-z0-9_]+", q)}
    assert named - served == set()
    # every service of the pipeline shows on the dashboard (the simulators stand for meters)
    for service in ("gateway", "bridge", "rating", "api"):
        assert any(name.startswith(f"meterline_{service}_") for name in named), service


def test_the_dashboard_uses_the_provisioned_data_source() -> None:
    board = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "meterline.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
