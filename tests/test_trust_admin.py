"""The admin is a client of the services (issue 13, item 5): link edits get a timeline row and a
broadcast or are refused, nothing is bulk-deleted, agents change only through actions, rule
changes are audited, and a view-only staff member changes nothing.

Users: `admin` (group admin), `analyst`, `viewer` from conftest, each made staff (not
superuser) for the admin site; `root` — a superuser.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditLog
from agents.models import Agent
from agents.services import register_agent, revoke_agent_token
from alerts.detection.engine import get_engine
from alerts.models import DetectionRule, SigmaRule
from alerts.services import create_alert
from events.services import create_event
from incidents.models import Incident, IncidentActivity
from incidents.services import create_incident
from tests.conftest import PASSWORD
from tests.detection_helpers import SIGMA_DIR, fresh_detection

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.test", PASSWORD)


def _incident_form(incident: Incident, **overrides) -> dict:
    form = {
        "title": incident.title,
        "description": incident.description,
        "severity": str(incident.severity),
        "assigned_to": "",
        "alerts": ",".join(str(a.pk) for a in incident.alerts.all()),
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "activities-MIN_NUM_FORMS": "0",
        "activities-MAX_NUM_FORMS": "1000",
    }
    form.update(overrides)
    return form


def test_linking_alerts_to_an_incident_in_the_admin_writes_the_timeline_and_broadcasts(
    client, staff, broadcasts, django_capture_on_commit_callbacks
):
    first = create_alert(title="Brute force", severity=4, category="brute_force")
    second = create_alert(title="DCSync", severity=5, category="credential_access")
    incident = create_incident(title="Case", severity=4, alerts=[first])
    client.force_login(staff["analyst"])
    broadcasts.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:incidents_incident_change", args=[incident.pk]),
            _incident_form(incident, alerts=f"{first.pk},{second.pk}"),
        )
    assert response.status_code == 302
    assert set(incident.alerts.values_list("pk", flat=True)) == {first.pk, second.pk}
    entry = IncidentActivity.objects.filter(incident=incident).latest("id")
    assert (entry.action, entry.note, entry.actor_name) == (
        "alerts",
        f"alerts added: #{second.pk}",
        "analyst",
    )
    sent = [(group, m["type"], m["action"]) for group, m in broadcasts]
    assert ("siem.incidents", "incident", "updated") in sent
    assert ("siem.dashboard", "incident", "updated") in sent


def test_the_alert_form_has_no_event_links_and_no_resolution_to_edit(client, staff):
    event = create_event({"computer": "WS-1", "event_code": 4625, "severity": 3, "message": "x"})
    alert = create_alert(title="x", severity=3, category="test", events=[event])
    client.force_login(staff["admin"])
    url = reverse("admin:alerts_alert_change", args=[alert.pk])
    page = client.get(url).content.decode()
    assert 'name="events"' not in page and 'name="resolution"' not in page
    response = client.post(
        url,
        {
            "title": "x (edited)",
            "severity": "3",
            "category": "test",
            "hostname": "",
            "description": "",
            "assigned_to": "",
            "events": "",  # ignored: not a form field
            "resolution": "typed in the admin",
            "activities-TOTAL_FORMS": "0",
            "activities-INITIAL_FORMS": "0",
            "activities-MIN_NUM_FORMS": "0",
            "activities-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.title == "x (edited)"
    assert list(alert.events.all()) == [event]
    assert alert.resolution == ""


@pytest.mark.parametrize(
    ("model", "make"),
    [
        ("alerts_alert", lambda: create_alert(title="x", severity=3, category="t")),
        ("incidents_incident", lambda: create_incident(title="x", severity=3)),
        (
            "events_securityevent",
            lambda: create_event({"computer": "H", "event_code": 1, "severity": 1, "message": "m"}),
        ),
    ],
)
def test_even_a_superuser_cannot_delete_alerts_incidents_or_events_in_the_admin(
    client, root, model, make
):
    obj = make()
    client.force_login(root)
    changelist = client.get(reverse(f"admin:{model}_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist
    client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": "delete_selected", "_selected_action": [str(obj.pk)], "post": "yes"},
    )
    assert client.post(reverse(f"admin:{model}_delete", args=[obj.pk])).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_agents_are_read_only_in_the_admin_and_deleted_only_through_the_audited_action(
    client, staff
):
    agent, _token = register_agent(hostname="WS-9", os="Windows 11")
    revoke_agent_token(agent, actor=staff["admin"])
    client.force_login(staff["admin"])
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    assert 'name="hostname"' not in client.get(url).content.decode()
    changelist = reverse("admin:agents_agent_changelist")
    assert 'value="delete_selected"' not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_agents", "_selected_action": [str(agent.pk)]})
    assert not Agent.objects.filter(pk=agent.pk).exists()
    actions = list(
        AuditLog.objects.filter(target_id=str(agent.pk)).values_list("action", "actor_name")
    )
    assert actions == [
        ("agent.deleted", "admin"),
        ("agent.token_revoked", "admin"),
        ("agent.enrolled", "system"),
    ]


def test_a_viewer_sees_no_agent_delete_action_and_cannot_delete(client, staff):
    agent, _ = register_agent(hostname="WS-10")
    client.force_login(staff["viewer"])
    changelist = reverse("admin:agents_agent_changelist")
    assert 'value="delete_agents"' not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_agents", "_selected_action": [str(agent.pk)]})
    assert Agent.objects.filter(pk=agent.pk).exists()


class TestRules:
    @pytest.fixture(autouse=True)
    def detection_namespace(self, settings):
        with fresh_detection(settings, sigma_dir=str(SIGMA_DIR), config_ttl=None):
            yield

    def test_a_view_only_staff_member_cannot_disable_or_reload_sigma_rules(self, client, staff):
        get_engine()  # records the rules found on disk
        rule = SigmaRule.objects.get(title="Mimikatz DC Sync")
        client.force_login(staff["viewer"])
        url = reverse("admin:alerts_sigmarule_changelist")
        page = client.get(url).content.decode()
        assert 'value="disable"' not in page and 'value="reload"' not in page
        for action in ("disable", "reload"):
            client.post(url, {"action": action, "_selected_action": [str(rule.pk)]})
        assert SigmaRule.objects.get(pk=rule.pk).enabled
        assert not AuditLog.objects.filter(action__startswith="rule").exists()

    def test_rule_switches_and_threshold_edits_are_audited(self, client, staff):
        get_engine()
        rule = SigmaRule.objects.get(title="Mimikatz DC Sync")
        client.force_login(staff["admin"])
        url = reverse("admin:alerts_sigmarule_changelist")
        client.post(url, {"action": "disable", "_selected_action": [str(rule.pk)]})
        builtin = DetectionRule.objects.get(rule_id="builtin.brute_force")
        client.post(
            reverse("admin:alerts_detectionrule_change", args=[builtin.pk]),
            {"enabled": "on", "threshold": "5", "window_seconds": "", "severity": ""},
        )
        entries = list(AuditLog.objects.order_by("id").values("action", "actor_name", "details"))
        assert entries[0]["action"] == "rule.disabled"
        assert entries[0]["details"]["rule"] == rule.rule_id
        assert entries[1]["action"] == "rule.changed"
        assert entries[1]["details"]["threshold"] == {"from": None, "to": 5}
        assert {e["actor_name"] for e in entries} == {"admin"}


def test_the_audit_log_is_read_only_and_for_admins_only(client, staff):
    revoke_agent_token(register_agent(hostname="WS-11")[0], actor=staff["admin"])
    url = reverse("admin:accounts_auditlog_changelist")
    client.force_login(staff["analyst"])
    assert client.get(url).status_code == 403
    client.force_login(staff["admin"])
    page = client.get(url)
    assert page.status_code == 200 and "agent.token_revoked" in page.content.decode()
    entry = AuditLog.objects.first()
    assert (
        client.post(reverse("admin:accounts_auditlog_delete", args=[entry.pk])).status_code == 403
    )


def test_changing_a_users_groups_in_the_admin_is_audited(client, staff, django_user_model):
    client.force_login(staff["admin"])
    target = staff["viewer"]
    from django.contrib.auth.models import Group

    analyst_group = Group.objects.get(name="analyst")
    response = client.post(
        reverse("admin:auth_user_change", args=[target.pk]),
        {
            "username": target.username,
            "email": target.email,
            "is_active": "on",
            "is_staff": "on",
            "groups": [str(analyst_group.pk)],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditLog.objects.get(action="user.roles_changed")
    assert entry.actor_name == "admin" and entry.target_repr == "viewer"
    assert entry.details["groups"] == {"from": ["viewer"], "to": ["analyst"]}


def test_revoking_someone_elses_session_is_audited_but_a_logout_is_not(viewer, admin_user):
    from accounts.services import issue_access_token, revoke_session

    _, own = issue_access_token(viewer)
    revoke_session(own, reason="logout", actor=viewer)
    _, other = issue_access_token(viewer)
    revoke_session(other, reason="revoked by admin", actor=admin_user)
    assert list(AuditLog.objects.values_list("action", "actor_name", "details__user")) == [
        ("session.revoked", "admin", "viewer")
    ]
