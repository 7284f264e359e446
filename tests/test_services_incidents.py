"""Incident services: create, escalate (levels), update, close, and refused transitions."""

from __future__ import annotations

import pytest

from alerts.services import create_alert
from incidents import services
from incidents.models import IncidentStatus
from siem.errors import InvalidTransition


def make_incident(**overrides):
    return services.create_incident(
        **{"title": "Brute force on WS-001", "severity": 4, **overrides}
    )


@pytest.mark.django_db
def test_create_links_alerts_and_broadcasts(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    alert = create_alert(title="x", severity=3, category="brute_force")
    with django_capture_on_commit_callbacks(execute=True):
        incident = make_incident(alerts=[alert], actor=analyst)
    assert list(incident.alerts.all()) == [alert]
    assert [(g, m["type"], m["action"]) for g, m in broadcasts] == [
        ("siem.incidents", "incident", "created"),
        ("siem.dashboard", "incident", "created"),
    ]
    data = broadcasts[0][1]["data"]
    assert (data["incident_id"], data["title"], data["severity"], data["status"]) == (
        incident.incident_id,
        "Brute force on WS-001",
        4,
        "open",
    )


@pytest.mark.django_db
def test_escalate_raises_the_level_each_time(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    incident = make_incident()
    with django_capture_on_commit_callbacks(execute=True):
        incident = services.escalate_incident(
            incident, actor=analyst, reason="domain admin involved"
        )
        incident = services.escalate_incident(incident, actor=analyst, reason="CISO informed")
    assert incident.status == IncidentStatus.ESCALATED and incident.escalation_level == 2
    assert [m["action"] for g, m in broadcasts if g == "siem.incidents"] == [
        "escalated",
        "escalated",
    ]
    notes = [a.note for a in incident.activities.filter(action="escalated")]
    assert notes == ["domain admin involved", "CISO informed"]


@pytest.mark.django_db
def test_close_then_escalate_or_close_again_is_refused(analyst):
    incident = services.close_incident(make_incident(), actor=analyst, resolution="contained")
    assert incident.status == IncidentStatus.CLOSED and incident.closed_at is not None
    with pytest.raises(
        InvalidTransition, match="incident .* is 'closed'; cannot change to 'escalated'"
    ):
        services.escalate_incident(incident, actor=analyst)
    with pytest.raises(InvalidTransition):
        services.close_incident(incident, actor=analyst)


@pytest.mark.django_db
def test_update_to_investigating_and_reassign(
    analyst, admin_user, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        incident = services.update_incident(
            make_incident(), actor=analyst, status="investigating", assigned_to="admin", severity=5
        )
    assert (incident.status, incident.assigned_to, incident.severity) == (
        "investigating",
        admin_user,
        5,
    )
    assert broadcasts[-1][1]["action"] == "updated"


@pytest.mark.django_db
def test_update_with_status_closed_closes_and_broadcasts_closed(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    incident = make_incident()
    with django_capture_on_commit_callbacks(execute=True):
        incident = services.update_incident(incident, actor=analyst, status="closed", severity=5)
    assert (incident.status, incident.severity) == (IncidentStatus.CLOSED, 5)
    assert [m["action"] for g, m in broadcasts if g == "siem.incidents"] == ["updated", "closed"]
