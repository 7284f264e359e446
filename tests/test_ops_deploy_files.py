"""The deployment files parse and agree with the code (no Docker engine or compose plugin here,
so `docker compose config` and `docker build` cannot run: docs/deployment.md says so)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_names_every_role_and_one_beat():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "nginx", "migrate"} <= set(services)
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["deploy"]["replicas"] >= 2
    assert "celery" in services["worker"]["command"] and "beat" in services["beat"]["command"]
    nginx_conf = services["nginx"]["volumes"][0].split(":")[0]
    assert (ROOT / nginx_conf).is_file()


def test_systemd_units_start_what_exists():
    units = ROOT / "deploy" / "systemd"
    daphne = (units / "siem-daphne@.service").read_text()
    assert "siem.asgi:application" in daphne and "PROMETHEUS_MULTIPROC_DIR" in daphne
    assert "-A siem worker" in (units / "siem-worker.service").read_text()
    assert "-A siem beat" in (units / "siem-beat.service").read_text()
    assert "migrate --noinput" in (units / "siem-migrate.service").read_text()


def test_nginx_upgrades_websockets_and_hides_metrics():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "location = /metrics { return 404; }" in conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf


def test_grafana_dashboard_queries_only_metrics_that_exist():
    from siem import metrics

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    exported = {
        "siem_ws_connections",
        "siem_ws_cluster_connections",
        "siem_ws_deliveries_total",
        "siem_ws_hub_lag_seconds_bucket",
        "siem_ws_resync_notices_total",
        "siem_ws_slow_client_closes_total",
        "siem_events_ingested_total",
        "siem_detection_latency_seconds_bucket",
        "siem_ai_backlog",
        "siem_celery_queue_depth",
        "siem_integration_failures_total",
        "siem_scrape_errors",
    }
    for name in exported:
        assert name in exprs, name
    assert metrics.INTEGRATION_FAILURES._name == "siem_integration_failures"
