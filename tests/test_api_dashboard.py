"""GET /api/v1/dashboard/statistics/: exactly the data of the `statistics` message."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from django.utils import timezone

from alerts import services as alert_services
from events.ai.base import Analysis
from events.services import apply_analysis, create_events
from incidents import services as incident_services
from realtime.messages import envelope
from tests.api_helpers import DENIED, READERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)


def ev(severity: int, age: timedelta) -> dict:
    return {
        "computer": "WS-001",
        "event_code": 4625,
        "severity": severity,
        "message": "m",
        "source_type": "Windows Security",
        "timestamp": timezone.now() - age,
    }


@pytest.mark.parametrize("caller", READERS)
def test_statistics_count_what_is_in_the_database(clients, caller):
    created = create_events(
        [
            ev(5, timedelta(minutes=5)),
            ev(4, timedelta(hours=3)),
            ev(1, timedelta(hours=2)),
            ev(5, timedelta(hours=30)),  # outside the 24 h window
        ]
    ).created
    # Scored by the analyzer above AI_NOTIFY_THRESHOLD (70), below AI_ALERT_THRESHOLD (85).
    apply_analysis(created[2], Analysis(80, "intrusion", "d"), provider="builtin")
    alert_services.create_alert(title="a", severity=5, category="c")
    resolved = alert_services.create_alert(title="b", severity=5, category="c")
    alert_services.resolve_alert(resolved, actor=None)
    incident_services.create_incident(title="i", severity=3)
    closed = incident_services.create_incident(title="j", severity=3)
    incident_services.close_incident(closed, actor=None)

    response = clients[caller].get("/api/v1/dashboard/statistics/")
    assert response.status_code == 200
    data = response.json()
    assert data["events"] == {"total_24h": 3, "last_hour": 1, "high_severity": 2, "ai_attacks": 1}
    assert data["alerts"] == {"new": 1, "critical": 1}
    assert data["incidents"] == {"open": 1}
    # The WS-AGENT of the clients fixture is registered (online).
    assert data["agents"] == {"online": 1, "offline": 0, "total": 1}
    # Exactly the `data` of a statistics message.
    jsonschema.validate(envelope("statistics", "updated", data), SCHEMA)


def test_statistics_path_without_trailing_slash(clients):
    assert clients["viewer"].get("/api/v1/dashboard/statistics").status_code == 200


@pytest.mark.parametrize("caller", ["anonymous", "agent", "norole"])
def test_others_cannot_read_statistics(clients, caller):
    response = clients[caller].get("/api/v1/dashboard/statistics/")
    assert response.status_code == DENIED[caller]


def test_statistics_are_read_only(clients):
    assert clients["admin"].post("/api/v1/dashboard/statistics/").status_code == 405
