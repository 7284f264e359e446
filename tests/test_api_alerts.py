"""/api/v1/alerts/: list, create, read with timeline, PATCH, acknowledge, assign, resolve."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from alerts import services
from alerts.models import Alert, AlertStatus
from events.services import create_events
from tests.api_helpers import DENIED, READERS, WRITERS, received_on

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)
ALERT_FIELDS = {
    "alert_id",
    "title",
    "description",
    "severity",
    "category",
    "hostname",
    "status",
    "assigned_to",
    "acknowledged_at",
    "resolved_at",
    "resolution",
    "source",
    "rule_id",
    "mitre_techniques",
    "occurrence_count",
    "first_seen",
    "last_seen",
    "created_at",
    "updated_at",
    "event_ids",
}

DETAIL_FIELDS = {"timeline", "entities", "mitre", "rule", "also_matched_by", "incident_ids"}


def new_alert(**fields) -> Alert:
    values = {"title": "Multiple failed logins", "severity": 4, "category": "brute_force"}
    values.update(fields)
    return services.create_alert(hostname=values.pop("hostname", "WS-001"), **values)


def body(**overrides) -> dict:
    data = {"title": "Spray", "severity": 4, "category": "brute_force", "hostname": "WS-001"}
    data.update(overrides)
    return data


# --- create -------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_admin_and_analyst_create_an_alert_linked_to_events(clients, caller):
    events = create_events(
        [
            {"computer": "WS-001", "event_code": 4625, "severity": 3, "message": "x"},
            {"computer": "WS-001", "event_code": 4625, "severity": 3, "message": "y"},
        ]
    ).created
    response = clients[caller].post(
        "/api/v1/alerts/",
        body(description="10 failures", event_ids=[e.pk for e in events]),
        format="json",
    )
    assert response.status_code == 201
    data = response.json()
    assert ALERT_FIELDS | DETAIL_FIELDS == set(data)
    assert data["status"] == "new"
    assert data["source"] == "manual"
    assert data["event_ids"] == sorted(e.pk for e in events)
    assert [entry["action"] for entry in data["timeline"]] == ["created"]
    assert data["timeline"][0]["actor"] == caller
    assert Alert.objects.get(pk=data["alert_id"]).created_by.username == caller


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_create_alerts(clients, caller):
    response = clients[caller].post("/api/v1/alerts", body(), format="json")
    assert response.status_code == DENIED[caller]
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"severity": 7}, "severity"),
        ({"severity": "critical"}, "severity"),
        ({"title": ""}, "title"),
        ({"category": None}, "category"),
        ({"event_ids": [999999]}, "event_ids"),
        ({"event_ids": "1,2"}, "event_ids"),
        ({"event_ids": ["a"]}, "event_ids"),
    ],
)
def test_bad_alert_input_gets_a_field_level_400_and_nothing_is_created(clients, overrides, field):
    response = clients["analyst"].post("/api/v1/alerts/", body(**overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Alert.objects.exists()


def test_alert_missing_required_fields_lists_each(clients):
    response = clients["analyst"].post("/api/v1/alerts/", {}, format="json")
    assert response.status_code == 400
    assert {"title", "severity", "category", "hostname"} <= set(response.json())


@pytest.mark.django_db(transaction=True)
def test_creating_an_alert_broadcasts_created(clients, admin_user):
    response, messages = received_on(
        "alerts",
        admin_user,
        lambda: clients["admin"].post("/api/v1/alerts/", body(), format="json"),
    )
    jsonschema.validate(messages[0], SCHEMA)
    assert (messages[0]["action"], messages[0]["data"]["alert_id"]) == (
        "created",
        response.json()["alert_id"],
    )


# --- read ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", READERS)
def test_every_role_reads_the_list_and_one_alert_with_its_timeline(clients, caller):
    alert = new_alert()
    services.acknowledge_alert(alert, actor=None)
    listing = clients[caller].get("/api/v1/alerts/")
    assert listing.status_code == 200
    assert set(listing.json()["results"][0]) == ALERT_FIELDS
    detail = clients[caller].get(f"/api/v1/alerts/{alert.pk}")
    assert detail.status_code == 200
    timeline = detail.json()["timeline"]
    assert [(t["action"], t["to_status"]) for t in timeline] == [
        ("created", "new"),
        ("acknowledged", "acknowledged"),
    ]


@pytest.mark.parametrize("caller", ["anonymous", "agent", "norole"])
def test_others_cannot_read_alerts(clients, caller):
    alert = new_alert()
    assert clients[caller].get("/api/v1/alerts/").status_code == DENIED[caller]
    assert clients[caller].get(f"/api/v1/alerts/{alert.pk}/").status_code == DENIED[caller]


def test_unknown_alert_is_404_for_reads_and_writes(clients):
    assert clients["viewer"].get("/api/v1/alerts/424242/").status_code == 404
    assert clients["admin"].post("/api/v1/alerts/424242/acknowledge/").status_code == 404
    assert clients["admin"].patch("/api/v1/alerts/424242", {"title": "x"}).status_code == 404


def test_alert_list_filters_search_ordering_and_newest_first(clients, analyst):
    first = new_alert(title="Old spray", severity=2, category="brute_force", hostname="DC-01")
    second = new_alert(title="Mimikatz", severity=5, category="credential_access")
    third = new_alert(title="Share access", severity=3, category="lateral_movement")
    services.acknowledge_alert(third, actor=analyst)

    def ids(query: str = "") -> list[int]:
        response = clients["viewer"].get(f"/api/v1/alerts/?{query}")
        assert response.status_code == 200, response.json()
        return [a["alert_id"] for a in response.json()["results"]]

    assert ids() == [third.pk, second.pk, first.pk]
    assert ids("status=new") == [second.pk, first.pk]
    assert ids("status=new&status=acknowledged") == [third.pk, second.pk, first.pk]
    assert ids("severity=5") == [second.pk]
    assert ids("category=lateral_movement") == [third.pk]
    assert ids("hostname=DC-01") == [first.pk]
    assert ids("assigned_to=analyst") == [third.pk]
    assert ids("search=mimikatz") == [second.pk]
    assert ids("ordering=severity") == [first.pk, third.pk, second.pk]
    assert ids("page_size=1&page=2") == [second.pk]


@pytest.mark.parametrize("query", ["status=bogus", "severity=high"])
def test_bad_alert_filters_are_400(clients, query):
    assert clients["viewer"].get(f"/api/v1/alerts/?{query}").status_code == 400


# --- acknowledge --------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_acknowledge_assigns_to_the_caller_by_default(clients, caller):
    alert = new_alert()
    response = clients[caller].post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 200
    data = response.json()
    assert (data["status"], data["assigned_to"]) == ("acknowledged", caller)
    assert data["acknowledged_at"] is not None


@pytest.mark.django_db(transaction=True)
def test_acknowledge_can_assign_someone_else_and_broadcasts_acknowledged(
    clients, analyst, admin_user
):
    alert = new_alert()
    response, messages = received_on(
        "alerts",
        admin_user,
        lambda: clients["admin"].post(
            f"/api/v1/alerts/{alert.pk}/acknowledge", {"assigned_to": "analyst"}, format="json"
        ),
    )
    assert response.json()["assigned_to"] == "analyst"
    jsonschema.validate(messages[0], SCHEMA)
    assert messages[0]["action"] == "acknowledged"
    assert messages[0]["data"]["assigned_to"] == "analyst"


def test_acknowledge_to_an_unknown_user_is_400_and_changes_nothing(clients):
    alert = new_alert()
    response = clients["admin"].post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {"assigned_to": "ghost"}, format="json"
    )
    assert response.status_code == 400
    assert "assigned_to" in response.json()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.NEW


def test_acknowledging_a_resolved_alert_is_409_with_the_reason(clients):
    alert = new_alert()
    services.resolve_alert(alert, actor=None)
    response = clients["admin"].post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 409
    assert "resolved" in response.json()["detail"]


@pytest.mark.parametrize("action", ["acknowledge", "assign", "resolve"])
@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_triage(clients, caller, action):
    alert = new_alert()
    response = clients[caller].post(
        f"/api/v1/alerts/{alert.pk}/{action}/", {"assigned_to": "viewer"}, format="json"
    )
    assert response.status_code == DENIED[caller]
    alert.refresh_from_db()
    assert (alert.status, alert.assigned_to) == (AlertStatus.NEW, None)


# --- assign -------------------------------------------------------------------------------------
def test_assign_sets_and_clears_the_assignee(clients, viewer):
    alert = new_alert()
    url = f"/api/v1/alerts/{alert.pk}/assign/"
    assigned = clients["analyst"].post(url, {"assigned_to": "viewer"}, format="json")
    assert assigned.status_code == 200
    assert assigned.json()["assigned_to"] == "viewer"
    cleared = clients["analyst"].post(url, {"assigned_to": None}, format="json")
    assert cleared.json()["assigned_to"] is None
    assert [t["action"] for t in cleared.json()["timeline"]] == ["created", "assigned", "assigned"]


def test_assign_requires_assigned_to(clients):
    alert = new_alert()
    response = clients["analyst"].post(f"/api/v1/alerts/{alert.pk}/assign/", {}, format="json")
    assert response.status_code == 400
    assert "assigned_to" in response.json()


def test_assigning_a_closed_alert_is_409(clients):
    alert = new_alert()
    services.resolve_alert(alert, actor=None)
    response = clients["analyst"].post(
        f"/api/v1/alerts/{alert.pk}/assign/", {"assigned_to": "analyst"}, format="json"
    )
    assert response.status_code == 409


# --- resolve ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_resolve_with_a_resolution_and_broadcast(clients, admin_user):
    alert = new_alert()
    response, messages = received_on(
        "dashboard",
        admin_user,
        lambda: clients["analyst"].post(
            f"/api/v1/alerts/{alert.pk}/resolve/", {"resolution": "password reset"}, format="json"
        ),
    )
    data = response.json()
    assert (data["status"], data["resolution"]) == ("resolved", "password reset")
    assert data["resolved_at"] is not None
    assert messages[0]["action"] == "resolved"


def test_resolve_as_false_positive(clients):
    alert = new_alert()
    response = clients["admin"].post(
        f"/api/v1/alerts/{alert.pk}/resolve", {"false_positive": True}, format="json"
    )
    assert response.json()["status"] == "false_positive"


def test_resolving_twice_is_409(clients):
    alert = new_alert()
    assert clients["admin"].post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 200
    assert clients["admin"].post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 409


def test_resolve_with_a_non_boolean_false_positive_is_400(clients):
    alert = new_alert()
    response = clients["admin"].post(
        f"/api/v1/alerts/{alert.pk}/resolve/", {"false_positive": "perhaps"}, format="json"
    )
    assert response.status_code == 400
    assert "false_positive" in response.json()


# --- PATCH --------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_patch_edits_fields_and_moves_status(clients, caller):
    alert = new_alert()
    response = clients[caller].patch(
        f"/api/v1/alerts/{alert.pk}/",
        {"severity": 5, "title": "Confirmed spray", "status": "investigating"},
        format="json",
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["severity"], data["title"], data["status"]) == (
        5,
        "Confirmed spray",
        "investigating",
    )


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_patch(clients, caller):
    alert = new_alert()
    response = clients[caller].patch(f"/api/v1/alerts/{alert.pk}/", {"severity": 1}, format="json")
    assert response.status_code == DENIED[caller]
    alert.refresh_from_db()
    assert alert.severity == 4


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"status": "closed"}, "status"),
        ({"severity": 0}, "severity"),
        ({"source": "ai"}, "source"),
        ({"occurrence_count": 9}, "occurrence_count"),
        ({}, "detail"),
    ],
)
def test_bad_patches_are_400(clients, patch, field):
    alert = new_alert()
    response = clients["admin"].patch(f"/api/v1/alerts/{alert.pk}/", patch, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_patching_a_resolved_alert_to_investigating_is_409(clients):
    alert = new_alert()
    services.resolve_alert(alert, actor=None)
    response = clients["admin"].patch(
        f"/api/v1/alerts/{alert.pk}/", {"status": "investigating"}, format="json"
    )
    assert response.status_code == 409


def test_alert_list_and_detail_use_a_fixed_number_of_queries(
    clients, django_assert_max_num_queries
):
    events = create_events(
        [{"computer": "WS", "event_code": 4625, "severity": 3, "message": "x"}] * 3
    ).created
    for i in range(15):
        alert = new_alert(title=f"alert {i}", events=events)
        services.acknowledge_alert(alert, actor=None)
    viewer = clients["viewer"]
    # auth (session + groups), count, page (assignee joined), events prefetch
    with django_assert_max_num_queries(5):
        response = viewer.get("/api/v1/alerts/?page_size=50")
    assert len(response.json()["results"]) == 15
    assert all(len(a["event_ids"]) == 3 for a in response.json()["results"])
    # + activities prefetch and event ids, no count; + entities and incident ids (context.py)
    with django_assert_max_num_queries(7):
        assert viewer.get(f"/api/v1/alerts/{alert.pk}/").json()["timeline"]
