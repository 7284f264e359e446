"""The alert page's REST additions (SPEC "Investigation"): events, context, rule, comments,
related alerts, users; acknowledging keeps the assignee; unknown list filters are a 400."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from alerts import services
from alerts.models import Alert, SigmaRule
from events.models import SecurityEvent
from incidents import services as incident_services
from tests.api_helpers import DENIED, READERS, WRITERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def make_events(count: int, **fields) -> list[SecurityEvent]:
    values = {
        "computer": "WS-001",
        "event_code": 4625,
        "severity": 3,
        "user_name": "alice",
        "source_ip": "10.0.0.5",
        "raw": {"LogonType": "3", "ProcessName": "C:\\Windows\\System32\\svchost.exe"},
    }
    values.update(fields)
    return SecurityEvent.objects.bulk_create(
        SecurityEvent(timestamp=T0 + timedelta(seconds=i), **values) for i in range(count)
    )


def detection_alert(events, **fields) -> Alert:
    values = {
        "dedup_key": "builtin.brute_force|WS-001|alice",
        "title": "Brute force",
        "severity": 4,
        "category": "credential_access",
        "hostname": "WS-001",
        "source": "rule",
        "rule_id": "builtin.brute_force",
        "mitre_techniques": ["T1110", "T1110.001", "attack.t9999"],
        "seen_at": T0,
        "first_seen": T0,
    }
    values.update(fields)
    alert, _created = services.raise_or_repeat(events=events, **values)
    return alert


# --- events ------------------------------------------------------------------------------------
def test_alert_events_count_equals_occurrence_count_across_repeats(clients):
    first, second, third = make_events(3), make_events(4), make_events(2)
    alert = detection_alert(first)
    spec = {"dedup_key": alert.dedup_key, "seen_at": T0, "title": "Brute force", "severity": 4}
    spec["category"] = "credential_access"
    services.raise_or_repeat_many([{**spec, "events": second}])
    # A repeat that reports events already counted (detection run again) adds nothing.
    services.raise_or_repeat_many([{**spec, "events": second[:2] + third}])
    alert.refresh_from_db()
    assert alert.occurrence_count == 9
    page = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/events/?page_size=4").json()
    assert page["count"] == alert.occurrence_count
    assert len(page["results"]) == 4 and page["next"]
    newest = [e["event_id"] for e in page["results"]]
    assert newest == sorted(newest, reverse=True)
    assert page["results"][0]["raw"]["LogonType"] == "3"


@pytest.mark.parametrize("caller", READERS)
def test_every_role_reads_an_alerts_events(clients, caller):
    alert = detection_alert(make_events(2))
    response = clients[caller].get(f"/api/v1/alerts/{alert.pk}/events")
    assert response.status_code == 200 and response.json()["count"] == 2


@pytest.mark.parametrize("caller", ["norole", "anonymous", "agent"])
def test_others_cannot_read_an_alerts_events_or_related_alerts(clients, caller):
    alert = detection_alert(make_events(1))
    for part in ("events", "related"):
        response = clients[caller].get(f"/api/v1/alerts/{alert.pk}/{part}/")
        assert response.status_code == DENIED[caller]


def test_events_of_a_missing_alert_are_404(clients):
    assert clients["viewer"].get("/api/v1/alerts/999999/events/").status_code == 404


# --- context -------------------------------------------------------------------------------------
def test_alert_detail_names_entities_techniques_rule_and_incidents(clients):
    alert = detection_alert(make_events(2) + make_events(1, user_name="bob", source_ip=""))
    incident = incident_services.create_incident(title="Case", severity=4, alerts=[alert])
    data = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/").json()
    assert data["entities"] == {
        "hosts": ["WS-001"],
        "users": ["alice", "bob"],
        "source_ips": ["10.0.0.5"],
        "logon_types": ["3"],
        "processes": ["C:\\Windows\\System32\\svchost.exe"],
    }
    assert data["mitre"] == [
        {"id": "T1110", "name": "Brute Force", "tactic": "Credential Access"},
        {
            "id": "T1110.001",
            "name": "Brute Force: Password Guessing",
            "tactic": "Credential Access",
        },
        {"id": "T9999", "name": "not in this SIEM's ATT&CK table", "tactic": ""},
    ]
    assert data["rule"] == {
        "id": "builtin.brute_force",
        "name": data["rule"]["name"],
        "source": "builtin",
        "level": "high",
    }
    assert data["rule"]["name"]
    assert data["incident_ids"] == [incident.pk]


def test_a_manual_alert_has_no_rule_and_names_its_host(clients):
    alert = services.create_alert(title="x", severity=2, category="manual", hostname="DC-01")
    data = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/").json()
    assert data["rule"] is None
    assert data["entities"]["hosts"] == ["DC-01"]
    assert (data["mitre"], data["incident_ids"]) == ([], [])


def test_a_sigma_rule_reads_as_its_yaml(clients, settings, tmp_path):
    (tmp_path / "r.yml").write_text("title: Test rule\nlevel: high\n")
    settings.SIGMA_RULES_DIR = str(tmp_path)
    SigmaRule.objects.create(rule_id="sigma:abc", title="Test rule", path="r.yml", level="high")
    alert = detection_alert(make_events(1), rule_id="sigma:abc", dedup_key="s")
    rule = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/").json()["rule"]
    assert rule == {"id": "sigma:abc", "name": "Test rule", "source": "sigma", "level": "high"}
    document = clients["viewer"].get("/api/v1/rules/sigma:abc/").json()
    assert (document["format"], document["text"]) == ("yaml", "title: Test rule\nlevel: high\n")


def test_a_sigma_rule_outside_the_rules_directory_is_never_read(clients, settings, tmp_path):
    settings.SIGMA_RULES_DIR = str(tmp_path / "rules")
    (tmp_path / "secret.yml").write_text("secret")
    SigmaRule.objects.create(rule_id="sigma:x", title="X", path="../secret.yml")
    assert clients["viewer"].get("/api/v1/rules/sigma:x").json()["text"] == ""


def test_a_builtin_rule_reads_with_its_settings(clients):
    document = clients["viewer"].get("/api/v1/rules/builtin.brute_force/").json()
    assert document["source"] == "builtin" and document["format"] == "text"
    assert "DETECTION_BRUTE_FORCE_THRESHOLD" in document["text"]
    assert document["techniques"][0]["id"] == "T1110"


@pytest.mark.parametrize(("caller", "code"), [("norole", 403), ("anonymous", 401)])
def test_rules_need_a_role(clients, caller, code):
    assert clients[caller].get("/api/v1/rules/builtin.brute_force/").status_code == code


def test_an_unknown_rule_is_404(clients):
    assert clients["viewer"].get("/api/v1/rules/builtin.nope/").status_code == 404


def test_related_alerts_share_a_host_or_a_user_or_ip_within_a_day(clients):
    alert = detection_alert(make_events(1))

    def other(hostname: str, seen_at=T0, **event_fields) -> Alert:
        events = make_events(1, **event_fields) if event_fields else []
        return services.create_alert(
            title=hostname, severity=2, category="c", hostname=hostname, events=events,
            seen_at=seen_at,
        )  # fmt: skip

    same_host = other("WS-001", seen_at=T0 - timedelta(days=30))  # the host: at any time
    same_user = other("WS-777", computer="X", source_ip="")
    same_ip = other("WS-778", computer="Y", user_name="zed")
    other("WS-779", seen_at=T0 + timedelta(days=3), computer="Z")  # same user, days later
    other("WS-999", computer="Y", user_name="zed", source_ip="1.2.3.4")  # nothing shared
    related = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/related/").json()
    assert {row["alert_id"] for row in related} == {same_host.pk, same_user.pk, same_ip.pk}


# --- comments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_a_comment_is_stored_timelined_and_broadcast(
    clients, caller, broadcasts, django_capture_on_commit_callbacks
):
    alert = detection_alert(make_events(1))
    with django_capture_on_commit_callbacks(execute=True):
        response = clients[caller].post(
            f"/api/v1/alerts/{alert.pk}/comments/", {"text": " Looks real "}, format="json"
        )
    assert response.status_code == 201
    comment = response.json()
    assert set(comment) == {"comment_id", "author", "text", "created_at"}
    assert (comment["author"], comment["text"]) == (caller, "Looks real")
    sent = [(group, m) for group, m in broadcasts if m["action"] == "commented"]
    assert sorted(group.rsplit(".", 1)[1] for group, _m in sent) == ["alerts", "dashboard"]
    for _group, message in sent:
        jsonschema.validate(message, SCHEMA)
        data = message["data"]
        assert {k: data[k] for k in ("alert_id", "comment_id", "author", "text")} == {
            "alert_id": alert.pk,
            "comment_id": comment["comment_id"],
            "author": caller,
            "text": "Looks real",
        }
    listed = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/comments").json()
    assert [c["comment_id"] for c in listed] == [comment["comment_id"]]
    timeline = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/").json()["timeline"]
    assert (timeline[-1]["action"], timeline[-1]["actor"], timeline[-1]["note"]) == (
        "commented",
        caller,
        "Looks real",
    )


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_comment(clients, caller):
    alert = detection_alert(make_events(1))
    response = clients[caller].post(
        f"/api/v1/alerts/{alert.pk}/comments/", {"text": "x"}, format="json"
    )
    assert response.status_code == DENIED[caller]
    assert not alert.comments.exists()


def test_an_empty_comment_is_a_400(clients):
    alert = detection_alert(make_events(1))
    response = clients["analyst"].post(
        f"/api/v1/alerts/{alert.pk}/comments/", {"text": "  "}, format="json"
    )
    assert response.status_code == 400 and "text" in response.json()


def test_norole_cannot_read_comments(clients):
    alert = detection_alert(make_events(1))
    assert clients["norole"].get(f"/api/v1/alerts/{alert.pk}/comments/").status_code == 403


# --- acknowledging keeps the assignee -----------------------------------------------------------
def test_acknowledging_keeps_the_assignee_and_the_timeline_says_who(clients, analyst):
    alert = detection_alert(make_events(1))
    services.assign_alert(alert, actor=None, assigned_to=analyst)
    data = clients["admin"].post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()
    assert (data["status"], data["assigned_to"]) == ("acknowledged", "analyst")
    last = data["timeline"][-1]
    assert (last["action"], last["actor"], last["note"]) == (
        "acknowledged",
        "admin",
        "kept assigned to analyst",
    )


def test_acknowledging_an_unassigned_alert_assigns_the_caller(clients):
    alert = detection_alert(make_events(1))
    data = clients["analyst"].post(f"/api/v1/alerts/{alert.pk}/acknowledge/").json()
    assert data["assigned_to"] == "analyst"
    assert data["timeline"][-1]["note"] == "assigned to analyst"


# --- users and strict filters ---------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_triage_roles_list_the_users_to_assign(clients, caller):
    users = clients[caller].get("/api/v1/users/").json()
    assert users == [
        {"username": "admin", "role": "admin"},
        {"username": "analyst", "role": "analyst"},
        {"username": "viewer", "role": "viewer"},
    ]


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_list_users(clients, caller):
    assert clients[caller].get("/api/v1/users/").status_code == DENIED[caller]


@pytest.mark.parametrize("path", ["/api/v1/alerts/", "/api/v1/incidents/"])
def test_unknown_list_filters_are_a_400_naming_them(clients, path):
    response = clients["viewer"].get(f"{path}?user_name=alice&mitre=T1110&status=new")
    assert response.status_code == 400
    assert set(response.json()) == {"user_name", "mitre"}


@pytest.mark.parametrize(
    "query", ["status=new", "severity_min=3&ordering=-severity", "search=x&page=1&page_size=5"]
)
def test_known_list_filters_still_work(clients, query):
    assert clients["viewer"].get(f"/api/v1/alerts/?{query}").status_code == 200


# --- occurrences, the incident filter, the pages ---------------------------------------------
def test_occurrences_count_the_alerts_events_in_round_buckets(clients):
    alert = detection_alert(make_events(3) + make_events(2))  # 0,1,2 s and 0,1 s after T0
    data = clients["viewer"].get(f"/api/v1/alerts/{alert.pk}/occurrences/").json()
    assert data["interval_sec"] == 1
    assert [(b["start"], b["count"]) for b in data["buckets"]] == [
        ("2026-11-30T12:00:00Z", 2),
        ("2026-11-30T12:00:01Z", 2),
        ("2026-11-30T12:00:02Z", 1),
    ]
    assert sum(b["count"] for b in data["buckets"]) == alert.occurrence_count


def test_the_alert_list_filters_by_incident(clients):
    inside = detection_alert(make_events(1))
    services.create_alert(title="outside", severity=2, category="c")
    incident = incident_services.create_incident(title="Case", severity=3, alerts=[inside])
    page = clients["viewer"].get(f"/api/v1/alerts/?incident={incident.pk}").json()
    assert [row["alert_id"] for row in page["results"]] == [inside.pk]


@pytest.mark.parametrize(
    ("path", "script", "data"),
    [
        ("/alerts/42/", "siem/js/alert.js", 'data-alert-id="42"'),
        ("/incidents/7/", "siem/js/incident.js", 'data-incident-id="7"'),
    ],
)
def test_case_pages_are_served_without_any_secret_and_with_a_strict_csp(client, path, script, data):
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    assert script in html and data in html and 'data-api-base="/api/v1"' in html
    assert 'id="signin-form"' in html  # the dashboard's sign-in, shared
    assert "eyJ" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]
