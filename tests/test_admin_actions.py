"""Admin triage actions go through the services: audited, broadcast, transitions enforced."""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import Alert, AlertStatus
from alerts.services import create_alert
from incidents.models import Incident
from incidents.services import create_incident


@pytest.fixture
def staff_admin(admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    return admin_user


def post_action(client, model: str, action: str, ids):
    url = reverse(f"admin:{model}_changelist")
    return client.post(
        url, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )


@pytest.mark.django_db
def test_acknowledge_action_assigns_to_me_and_broadcasts(
    client, staff_admin, broadcasts, django_capture_on_commit_callbacks
):
    alerts = [create_alert(title=f"a{i}", severity=3, category="test") for i in range(2)]
    client.force_login(staff_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(
            client, "alerts_alert", "acknowledge_selected", [a.pk for a in alerts]
        )
    assert response.status_code == 200
    assert "Acknowledged 2 alert(s)." in response.content.decode()
    for alert in Alert.objects.all():
        assert (alert.status, alert.assigned_to) == (AlertStatus.ACKNOWLEDGED, staff_admin)
        assert alert.activities.last().actor_name == "admin"
    assert sorted(m["action"] for g, m in broadcasts if g == "siem.alerts") == ["acknowledged"] * 2


@pytest.mark.django_db
def test_resolve_action_reports_alerts_it_could_not_resolve(client, staff_admin):
    open_alert = create_alert(title="open", severity=3, category="test")
    done = create_alert(title="done", severity=3, category="test")
    client.force_login(staff_admin)
    post_action(client, "alerts_alert", "resolve_selected", [done.pk])
    response = post_action(client, "alerts_alert", "resolve_selected", [open_alert.pk, done.pk])
    page = response.content.decode()
    assert "Resolved 1 alert(s)." in page
    assert f"Alert {done.pk} is &#x27;resolved&#x27;; cannot change to &#x27;resolved&#x27;" in page
    assert Alert.objects.get(pk=open_alert.pk).status == AlertStatus.RESOLVED


@pytest.mark.django_db
def test_escalate_and_close_incident_actions(client, staff_admin):
    incident = create_incident(title="Lateral movement", severity=5)
    client.force_login(staff_admin)
    post_action(client, "incidents_incident", "escalate_selected", [incident.pk])
    post_action(client, "incidents_incident", "close_selected", [incident.pk])
    incident = Incident.objects.get(pk=incident.pk)
    assert (incident.status, incident.escalation_level) == ("closed", 1)
    assert [a.action for a in incident.activities.all()] == ["created", "escalated", "closed"]


@pytest.mark.django_db
def test_alert_created_in_the_admin_goes_through_the_service(
    client, staff_admin, broadcasts, django_capture_on_commit_callbacks
):
    client.force_login(staff_admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:alerts_alert_add"),
            {
                "title": "Suspicious PowerShell",
                "description": "",
                "severity": 4,
                "category": "execution",
                "hostname": "WS-009",
                "resolution": "",
                "activities-TOTAL_FORMS": 0,
                "activities-INITIAL_FORMS": 0,
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    alert = Alert.objects.get()
    assert (alert.title, alert.created_by) == ("Suspicious PowerShell", staff_admin)
    assert [m["action"] for g, m in broadcasts if g == "siem.alerts"] == ["created"]


@pytest.mark.django_db
def test_agent_admin_never_shows_the_token_hash(client, staff_admin):
    from agents.services import register_agent

    agent, token = register_agent(hostname="WS-010")
    client.force_login(staff_admin)
    for url in (
        reverse("admin:agents_agent_changelist"),
        reverse("admin:agents_agent_change", args=[agent.pk]),
    ):
        page = client.get(url).content.decode()
        assert "WS-010" in page
        assert agent.token_hash not in page and token not in page
