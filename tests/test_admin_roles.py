"""The admin enforces the same roles as the API: viewers read, analysts triage, admins manage."""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import Alert, AlertStatus
from alerts.services import create_alert


def acknowledge(client, alert):
    return client.post(
        reverse("admin:alerts_alert_changelist"),
        {"action": "acknowledge_selected", "_selected_action": [str(alert.pk)]},
        follow=True,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "list_status", "can_acknowledge", "users_status"),
    [("admin", 200, True, 200), ("analyst", 200, True, 403), ("viewer", 200, False, 403)],
)
def test_admin_pages_follow_the_roles(
    client, staff, role, list_status, can_acknowledge, users_status
):
    alert = create_alert(title="Audit log cleared", severity=5, category="defense_evasion")
    client.force_login(staff[role])
    page = client.get(reverse("admin:alerts_alert_changelist"))
    assert page.status_code == list_status
    assert ('value="acknowledge_selected"' in page.content.decode()) is can_acknowledge
    acknowledge(client, alert)
    expected = AlertStatus.ACKNOWLEDGED if can_acknowledge else AlertStatus.NEW
    assert Alert.objects.get(pk=alert.pk).status == expected
    assert client.get(reverse("admin:auth_user_changelist")).status_code == users_status


@pytest.mark.django_db
def test_viewer_cannot_change_an_alert_through_the_change_form(client, staff):
    alert = create_alert(title="x", severity=3, category="test")
    client.force_login(staff["viewer"])
    url = reverse("admin:alerts_alert_change", args=[alert.pk])
    assert client.get(url).status_code == 200  # view-only page
    response = client.post(url, {"title": "changed", "severity": 1, "category": "test"})
    assert response.status_code == 403
    assert Alert.objects.get(pk=alert.pk).title == "x"


@pytest.mark.django_db
def test_only_admins_revoke_agent_tokens(client, staff):
    from agents.services import register_agent

    register_agent(hostname="WS-77")
    url = reverse("admin:agents_agent_changelist")
    client.force_login(staff["analyst"])
    assert 'value="revoke_tokens"' not in client.get(url).content.decode()
    client.force_login(staff["admin"])
    assert 'value="revoke_tokens"' in client.get(url).content.decode()
