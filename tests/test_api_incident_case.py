"""The incident page's REST additions (SPEC "Investigation"): comments, tasks, observables,
adding alerts, and closing with resolve_alerts — every change in the timeline, broadcast."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from alerts import services as alert_services
from events.models import SecurityEvent
from incidents import services
from incidents.models import IncidentTask
from tests.api_helpers import DENIED, READERS, WRITERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)


def new_alert(**fields):
    values = {"title": "Spray", "severity": 4, "category": "brute_force", "hostname": "WS-001"}
    values.update(fields)
    return alert_services.create_alert(**values)


def new_incident(**fields):
    values = {"title": "Domain compromise", "severity": 5}
    values.update(fields)
    return services.create_incident(**values)


def sent(broadcasts, kind: str, action: str) -> list[dict]:
    """The messages of `kind`/`action` sent to their own channel, schema-checked."""
    found = [m for group, m in broadcasts if group.endswith(f".{kind}s") and m["action"] == action]
    for message in found:
        jsonschema.validate(message, SCHEMA)
    return found


# --- comments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_an_incident_comment_is_stored_timelined_and_broadcast(
    clients, caller, broadcasts, django_capture_on_commit_callbacks
):
    incident = new_incident()
    with django_capture_on_commit_callbacks(execute=True):
        response = clients[caller].post(
            f"/api/v1/incidents/{incident.pk}/comments/", {"text": "Isolate WS-001"}, format="json"
        )
    assert response.status_code == 201
    comment = response.json()
    assert set(comment) == {"comment_id", "author", "text", "created_at"}
    [message] = sent(broadcasts, "incident", "commented")
    assert {k: message["data"][k] for k in ("incident_id", "comment_id", "author", "text")} == {
        "incident_id": incident.pk,
        "comment_id": comment["comment_id"],
        "author": caller,
        "text": "Isolate WS-001",
    }
    assert [
        c["text"]
        for c in clients["viewer"].get(f"/api/v1/incidents/{incident.pk}/comments/").json()
    ] == ["Isolate WS-001"]
    last = clients["viewer"].get(f"/api/v1/incidents/{incident.pk}/").json()["timeline"][-1]
    assert (last["action"], last["actor"], last["note"]) == ("commented", caller, "Isolate WS-001")


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_comment_on_incidents(clients, caller):
    incident = new_incident()
    response = clients[caller].post(
        f"/api/v1/incidents/{incident.pk}/comments/", {"text": "x"}, format="json"
    )
    assert response.status_code == DENIED[caller]


# --- tasks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_tasks_are_added_assigned_and_done_in_the_timeline(
    clients, caller, broadcasts, django_capture_on_commit_callbacks
):
    incident = new_incident()
    with django_capture_on_commit_callbacks(execute=True):
        response = clients[caller].post(
            f"/api/v1/incidents/{incident.pk}/tasks/",
            {"title": "Reset alice's password", "assigned_to": "analyst"},
            format="json",
        )
    assert response.status_code == 201
    task = response.json()
    assert {k: task[k] for k in ("title", "status", "assigned_to")} == {
        "title": "Reset alice's password",
        "status": "open",
        "assigned_to": "analyst",
    }
    assert isinstance(task["task_id"], int)
    with django_capture_on_commit_callbacks(execute=True):
        done = clients[caller].patch(
            f"/api/v1/tasks/{task['task_id']}/",
            {"status": "done", "assigned_to": "admin"},
            format="json",
        )
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["assigned_to"]) == ("done", "admin")
    assert len(sent(broadcasts, "incident", "updated")) == 2
    listed = clients["viewer"].get(f"/api/v1/incidents/{incident.pk}/tasks").json()
    assert [(t["task_id"], t["status"]) for t in listed] == [(task["task_id"], "done")]
    notes = [
        (e["action"], e["actor"], e["note"])
        for e in clients["viewer"].get(f"/api/v1/incidents/{incident.pk}/").json()["timeline"]
    ]
    assert notes[-2:] == [
        ("task added", caller, "Reset alice's password (assigned to analyst)"),
        ("task", caller, "Reset alice's password: done, assigned to admin"),
    ]


def test_a_task_for_an_unknown_user_is_a_400(clients):
    incident = new_incident()
    response = clients["analyst"].post(
        f"/api/v1/incidents/{incident.pk}/tasks/",
        {"title": "x", "assigned_to": "nobody"},
        format="json",
    )
    assert response.status_code == 400 and "assigned_to" in response.json()
    assert not IncidentTask.objects.exists()


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_add_or_change_tasks(clients, caller):
    incident = new_incident()
    task = services.add_task(incident, actor=None, title="t")
    post = clients[caller].post(
        f"/api/v1/incidents/{incident.pk}/tasks/", {"title": "x"}, format="json"
    )
    patch = clients[caller].patch(f"/api/v1/tasks/{task.pk}/", {"status": "done"}, format="json")
    assert (post.status_code, patch.status_code) == (DENIED[caller], DENIED[caller])


@pytest.mark.parametrize("caller", READERS)
def test_every_role_reads_tasks_comments_and_observables(clients, caller):
    incident = new_incident()
    for part in ("tasks", "comments", "observables"):
        response = clients[caller].get(f"/api/v1/incidents/{incident.pk}/{part}/")
        assert response.status_code == 200


def test_norole_reads_nothing_of_a_case(clients):
    incident = new_incident()
    for part in ("tasks", "comments", "observables"):
        assert clients["norole"].get(f"/api/v1/incidents/{incident.pk}/{part}/").status_code == 403


# --- observables ---------------------------------------------------------------------------------
def test_observables_are_the_alerts_entities_plus_manual_ones(clients):
    event = SecurityEvent.objects.create(
        computer="WS-002", event_code=4625, severity=3, user_name="alice", source_ip="10.0.0.5"
    )
    incident = new_incident(alerts=[new_alert(events=[event])])
    response = clients["analyst"].post(
        f"/api/v1/incidents/{incident.pk}/observables/",
        {"kind": "domain", "value": "evil.example"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json() == {"kind": "domain", "value": "evil.example", "source": "manual"}
    duplicate = clients["analyst"].post(
        f"/api/v1/incidents/{incident.pk}/observables/",
        {"kind": "ip", "value": "10.0.0.5"},
        format="json",
    )
    assert duplicate.status_code == 201
    listed = clients["viewer"].get(f"/api/v1/incidents/{incident.pk}/observables/").json()
    assert listed == [
        {"kind": "host", "value": "WS-001", "source": "alert"},
        {"kind": "host", "value": "WS-002", "source": "alert"},
        {"kind": "user", "value": "alice", "source": "alert"},
        {"kind": "ip", "value": "10.0.0.5", "source": "alert"},
        {"kind": "domain", "value": "evil.example", "source": "manual"},
    ]


def test_an_observable_of_an_unknown_kind_is_a_400(clients):
    incident = new_incident()
    response = clients["analyst"].post(
        f"/api/v1/incidents/{incident.pk}/observables/",
        {"kind": "url", "value": "x"},
        format="json",
    )
    assert response.status_code == 400 and "kind" in response.json()


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_add_observables(clients, caller):
    incident = new_incident()
    response = clients[caller].post(
        f"/api/v1/incidents/{incident.pk}/observables/",
        {"kind": "ip", "value": "1.2.3.4"},
        format="json",
    )
    assert response.status_code == DENIED[caller]


# --- alerts in the case ------------------------------------------------------------------------
def test_adding_alerts_is_logged_with_which_on_both_sides(clients):
    first, second, third = new_alert(), new_alert(), new_alert()
    incident = new_incident(alerts=[first])
    response = clients["analyst"].post(
        f"/api/v1/incidents/{incident.pk}/alerts/",
        {"alert_ids": [first.pk, second.pk, third.pk]},
        format="json",
    )
    assert response.status_code == 200
    data = response.json()
    assert data["alert_ids"] == [first.pk, second.pk, third.pk]
    assert [(e["action"], e["note"]) for e in data["timeline"]] == [
        ("created", ""),
        ("alerts", f"alerts added: #{first.pk}"),
        ("alerts", f"alerts added: #{second.pk}, #{third.pk}"),
    ]
    alert_timeline = clients["viewer"].get(f"/api/v1/alerts/{second.pk}/").json()["timeline"]
    assert (alert_timeline[-1]["actor"], alert_timeline[-1]["note"]) == (
        "analyst",
        f"added to incident #{incident.pk}",
    )


def test_patching_alert_ids_logs_what_came_and_went(clients):
    first, second = new_alert(), new_alert()
    incident = new_incident(alerts=[first])
    data = (
        clients["admin"]
        .patch(f"/api/v1/incidents/{incident.pk}/", {"alert_ids": [second.pk]}, format="json")
        .json()
    )
    assert [e["note"] for e in data["timeline"][-2:]] == [
        f"alerts removed: #{first.pk}",
        f"alerts added: #{second.pk}",
    ]


# --- close with resolve_alerts --------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_closing_with_resolve_alerts_resolves_its_open_alerts(
    clients, caller, broadcasts, django_capture_on_commit_callbacks
):
    open_one, acknowledged, done = new_alert(), new_alert(), new_alert()
    alert_services.acknowledge_alert(acknowledged, actor=None)
    alert_services.resolve_alert(done, actor=None, resolution="earlier")
    incident = new_incident(alerts=[open_one, acknowledged, done])
    with django_capture_on_commit_callbacks(execute=True):
        response = clients[caller].post(
            f"/api/v1/incidents/{incident.pk}/close/",
            {"resolution": "Contained", "resolve_alerts": True},
            format="json",
        )
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    for alert, resolution in ((open_one, "Contained"), (acknowledged, "Contained")):
        alert.refresh_from_db()
        assert (alert.status, alert.resolution) == ("resolved", resolution)
        last = alert.activities.last()
        assert (last.action, last.actor_name) == ("resolved", caller)
    done.refresh_from_db()
    assert done.resolution == "earlier"
    resolved = sent(broadcasts, "alert", "resolved")
    assert sorted(m["data"]["alert_id"] for m in resolved) == [open_one.pk, acknowledged.pk]
    assert len(sent(broadcasts, "incident", "closed")) == 1


def test_closing_without_resolve_alerts_leaves_them(clients):
    alert = new_alert()
    incident = new_incident(alerts=[alert])
    clients["analyst"].post(f"/api/v1/incidents/{incident.pk}/close/", {}, format="json")
    alert.refresh_from_db()
    assert alert.status == "new"
