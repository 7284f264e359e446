"""/api/v1/incidents/: list, create, read with timeline, PATCH, escalate, close."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from alerts import services as alert_services
from incidents import services
from incidents.models import Incident, IncidentStatus
from tests.api_helpers import DENIED, READERS, WRITERS, received_on

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)
INCIDENT_FIELDS = {
    "incident_id",
    "title",
    "description",
    "severity",
    "status",
    "escalation_level",
    "assigned_to",
    "created_at",
    "updated_at",
    "closed_at",
    "resolution",
    "alert_ids",
}


def new_alert():
    return alert_services.create_alert(title="Spray", severity=4, category="brute_force")


def new_incident(**fields) -> Incident:
    values = {"title": "Domain compromise", "severity": 5}
    values.update(fields)
    return services.create_incident(**values)


# --- create -------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_admin_and_analyst_open_an_incident_with_alerts(clients, caller):
    alerts = [new_alert(), new_alert()]
    response = clients[caller].post(
        "/api/v1/incidents/",
        {
            "title": "Lateral movement",
            "severity": 4,
            "description": "psexec from WS-001",
            "alert_ids": [a.pk for a in alerts],
        },
        format="json",
    )
    assert response.status_code == 201
    data = response.json()
    assert INCIDENT_FIELDS | {"timeline"} == set(data)
    assert (data["status"], data["escalation_level"]) == ("open", 0)
    assert data["alert_ids"] == sorted(a.pk for a in alerts)
    assert data["timeline"][0]["actor"] == caller


@pytest.mark.django_db(transaction=True)
def test_opening_an_incident_broadcasts_created(clients, admin_user):
    response, messages = received_on(
        "incidents",
        admin_user,
        lambda: clients["admin"].post(
            "/api/v1/incidents", {"title": "X", "severity": 3}, format="json"
        ),
    )
    jsonschema.validate(messages[0], SCHEMA)
    assert (messages[0]["action"], messages[0]["data"]["incident_id"]) == (
        "created",
        response.json()["incident_id"],
    )


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_open_incidents(clients, caller):
    response = clients[caller].post(
        "/api/v1/incidents/", {"title": "X", "severity": 3}, format="json"
    )
    assert response.status_code == DENIED[caller]
    assert not Incident.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"severity": 3}, "title"),
        ({"title": "X"}, "severity"),
        ({"title": "X", "severity": 9}, "severity"),
        ({"title": "X", "severity": 3, "alert_ids": [987654]}, "alert_ids"),
        ({"title": "X", "severity": 3, "alert_ids": {"a": 1}}, "alert_ids"),
        ({"title": "X", "severity": 3, "assigned_to": "ghost"}, "assigned_to"),
    ],
)
def test_bad_incident_input_is_a_field_level_400(clients, data, field):
    response = clients["analyst"].post("/api/v1/incidents/", data, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Incident.objects.exists()


# --- read ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", READERS)
def test_every_role_reads_incidents_and_one_with_its_timeline(clients, caller):
    incident = new_incident()
    services.escalate_incident(incident, actor=None, reason="DA account involved")
    listing = clients[caller].get("/api/v1/incidents")
    assert listing.status_code == 200
    assert set(listing.json()["results"][0]) == INCIDENT_FIELDS
    detail = clients[caller].get(f"/api/v1/incidents/{incident.pk}/").json()
    assert [(t["action"], t["note"]) for t in detail["timeline"]] == [
        ("created", ""),
        ("escalated", "DA account involved"),
    ]


@pytest.mark.parametrize("caller", ["anonymous", "agent", "norole"])
def test_others_cannot_read_incidents(clients, caller):
    incident = new_incident()
    assert clients[caller].get("/api/v1/incidents/").status_code == DENIED[caller]
    assert clients[caller].get(f"/api/v1/incidents/{incident.pk}").status_code == DENIED[caller]


def test_incident_list_filters_and_newest_first(clients):
    low = new_incident(title="Adware", severity=2)
    high = new_incident(title="Ransomware", severity=5)
    closed = new_incident(title="Phish", severity=3)
    services.close_incident(closed, actor=None)

    def ids(query: str = "") -> list[int]:
        response = clients["viewer"].get(f"/api/v1/incidents/?{query}")
        assert response.status_code == 200, response.json()
        return [i["incident_id"] for i in response.json()["results"]]

    assert ids() == [closed.pk, high.pk, low.pk]
    assert ids("status=open") == [high.pk, low.pk]
    assert ids("severity=5") == [high.pk]
    assert ids("search=ransom") == [high.pk]
    assert ids("ordering=severity") == [low.pk, closed.pk, high.pk]
    assert clients["viewer"].get("/api/v1/incidents/?status=done").status_code == 400


def test_unknown_incident_is_404(clients):
    assert clients["viewer"].get("/api/v1/incidents/31337/").status_code == 404
    assert clients["admin"].post("/api/v1/incidents/31337/close/").status_code == 404


# --- escalate and close -------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_escalate_raises_the_level_each_time(clients, caller):
    incident = new_incident()
    url = f"/api/v1/incidents/{incident.pk}/escalate/"
    first = clients[caller].post(url, {"reason": "needs IR team"}, format="json")
    assert first.status_code == 200
    assert (first.json()["status"], first.json()["escalation_level"]) == ("escalated", 1)
    second = clients[caller].post(url)
    assert second.json()["escalation_level"] == 2


@pytest.mark.django_db(transaction=True)
def test_escalate_broadcasts_escalated(clients, admin_user):
    incident = new_incident()
    _response, messages = received_on(
        "dashboard",
        admin_user,
        lambda: clients["admin"].post(f"/api/v1/incidents/{incident.pk}/escalate"),
    )
    jsonschema.validate(messages[0], SCHEMA)
    assert messages[0]["action"] == "escalated"


@pytest.mark.parametrize("caller", WRITERS)
def test_close_records_the_resolution(clients, caller):
    incident = new_incident()
    response = clients[caller].post(
        f"/api/v1/incidents/{incident.pk}/close/", {"resolution": "contained"}, format="json"
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["resolution"]) == ("closed", "contained")
    assert data["closed_at"] is not None


def test_closed_incident_cannot_be_closed_or_escalated_again(clients):
    incident = new_incident()
    services.close_incident(incident, actor=None)
    assert clients["admin"].post(f"/api/v1/incidents/{incident.pk}/close/").status_code == 409
    response = clients["admin"].post(f"/api/v1/incidents/{incident.pk}/escalate/")
    assert response.status_code == 409
    assert "closed" in response.json()["detail"]


@pytest.mark.parametrize("action", ["escalate", "close"])
@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_escalate_or_close(clients, caller, action):
    incident = new_incident()
    response = clients[caller].post(f"/api/v1/incidents/{incident.pk}/{action}/")
    assert response.status_code == DENIED[caller]
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.OPEN


def test_escalate_with_a_non_string_reason_is_400(clients):
    incident = new_incident()
    response = clients["admin"].post(
        f"/api/v1/incidents/{incident.pk}/escalate/", {"reason": ["x"]}, format="json"
    )
    assert response.status_code == 400
    assert "reason" in response.json()


# --- PATCH --------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_patch_edits_fields_status_and_linked_alerts(clients, caller, viewer):
    incident = new_incident(alerts=[new_alert()])
    replacement = new_alert()
    response = clients[caller].patch(
        f"/api/v1/incidents/{incident.pk}/",
        {
            "severity": 3,
            "status": "investigating",
            "assigned_to": "viewer",
            "alert_ids": [replacement.pk],
        },
        format="json",
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["severity"], data["status"], data["assigned_to"]) == (
        3,
        "investigating",
        "viewer",
    )
    assert data["alert_ids"] == [replacement.pk]


def test_patch_to_closed_closes_the_incident(clients):
    incident = new_incident()
    response = clients["admin"].patch(
        f"/api/v1/incidents/{incident.pk}", {"status": "closed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    assert response.json()["closed_at"] is not None


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_patch_incidents(clients, caller):
    incident = new_incident()
    response = clients[caller].patch(
        f"/api/v1/incidents/{incident.pk}/", {"severity": 1}, format="json"
    )
    assert response.status_code == DENIED[caller]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"status": "resolved"}, "status"),
        ({"escalation_level": 9}, "escalation_level"),
        ({"alert_ids": [55555]}, "alert_ids"),
        ({}, "detail"),
    ],
)
def test_bad_incident_patches_are_400(clients, patch, field):
    incident = new_incident()
    response = clients["admin"].patch(f"/api/v1/incidents/{incident.pk}/", patch, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_patching_a_closed_incident_to_investigating_is_409(clients):
    incident = new_incident()
    services.close_incident(incident, actor=None)
    response = clients["admin"].patch(
        f"/api/v1/incidents/{incident.pk}/", {"status": "investigating"}, format="json"
    )
    assert response.status_code == 409


def test_incident_list_uses_a_fixed_number_of_queries(clients, django_assert_max_num_queries):
    alerts = [new_alert(), new_alert()]
    for _ in range(10):
        new_incident(alerts=alerts)
    with django_assert_max_num_queries(5):  # session, groups, count, page, alerts prefetch
        response = clients["viewer"].get("/api/v1/incidents/")
    assert [len(i["alert_ids"]) for i in response.json()["results"]] == [2] * 10
