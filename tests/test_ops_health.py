"""/healthz, /readyz and /metrics: answers when things are up, 503 when Redis or the database
is down (really down: an unused port), metrics that Prometheus's own parser reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from siem import settings as siem_settings
from tests.browser_support import free_port

pytestmark = pytest.mark.django_db

EXPECTED_METRICS = {
    "siem_ws_connections",
    "siem_ws_deliveries",
    "siem_ws_hub_lag_seconds",
    "siem_ws_resync_notices",
    "siem_ws_slow_client_closes",
    "siem_events_ingested",
    "siem_detection_latency_seconds",
    "siem_integration_failures",
    "siem_ws_cluster_connections",
    "siem_celery_queue_depth",
    "siem_ai_backlog",
    "siem_scrape_errors",
}


def test_healthz_answers_without_authentication():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_when_database_and_redis_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
    }


def test_readyz_answers_503_when_redis_is_down(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "unavailable"


def test_readyz_answers_503_when_the_database_is_down():
    """A fresh process whose DATABASE_URL points at a port where no PostgreSQL listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SIEM_TEST"))}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        DJANGO_SETTINGS_MODULE="siem.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nothing",
        ALLOWED_HOSTS="testserver",
    )
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(r.status_code); print(r.content.decode())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=siem_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-2:]
    assert status == "503"
    checks = json.loads(body)["checks"]
    assert checks["database"]["status"] == "unavailable"
    assert checks["redis"]["status"] == "ok"


def test_metrics_parse_with_the_prometheus_parser():
    from events.services import create_events

    create_events([{"computer": "WS-1", "event_code": 4625, "severity": 3, "source_type": "x"}])
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert EXPECTED_METRICS <= set(families)
    samples = families["siem_events_ingested"].samples
    assert [s.value for s in samples if s.name == "siem_events_ingested_total"][0] >= 1
    errors = {s.labels["store"]: s.value for s in families["siem_scrape_errors"].samples}
    assert errors == {"presence": 0, "broker": 0, "database": 0}
    channels = {s.labels["channel"] for s in families["siem_ws_cluster_connections"].samples}
    assert {"events", "alerts", "dashboard"} <= channels


def test_metrics_are_refused_to_remote_peers_without_the_token():
    response = Client().get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


def test_metrics_token_opens_metrics_to_remote_scrapers(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert Client().get("/metrics", **remote).status_code == 403
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **remote)
    assert wrong.status_code == 403
    right = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret", **remote)
    assert right.status_code == 200
    # With a token, loopback needs it too: the proxy in front is often on loopback.
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
