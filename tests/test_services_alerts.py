"""Alert services: state machine, audit trail, broadcasts after commit, de-duplication."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from alerts import services
from alerts.models import Alert, AlertStatus
from siem.errors import InvalidTransition


def make_alert(**overrides) -> Alert:
    fields = {
        "title": "Multiple failed login attempts",
        "severity": 4,
        "category": "brute_force",
        "hostname": "WS-001",
    }
    return services.create_alert(**{**fields, **overrides})


def kinds(broadcasts):
    return [(group, m["type"], m.get("action")) for group, m in broadcasts]


@pytest.mark.django_db
def test_create_alert_broadcasts_to_alerts_and_dashboard_after_commit(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alert = make_alert(actor=analyst)
        assert broadcasts == []  # nothing leaves before the commit
    assert kinds(broadcasts) == [
        ("siem.alerts", "alert", "created"),
        ("siem.dashboard", "alert", "created"),
    ]
    data = broadcasts[0][1]["data"]
    assert {
        "alert_id": alert.alert_id,
        "title": "Multiple failed login attempts",
        "severity": 4,
        "category": "brute_force",
        "hostname": "WS-001",
        "status": "new",
    }.items() <= data.items()
    assert [a.action for a in alert.activities.all()] == ["created"]
    assert alert.activities.get().actor_name == "analyst"


@pytest.mark.django_db
def test_rolled_back_write_never_broadcasts(broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            make_alert()
            raise RuntimeError("boom")
    assert broadcasts == []
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_acknowledge_sets_assignee_and_broadcasts_the_guide_shape(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    alert = make_alert()
    with django_capture_on_commit_callbacks(execute=True):
        alert = services.acknowledge_alert(alert, actor=analyst)
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.assigned_to == analyst
    assert alert.acknowledged_at is not None
    group, message = broadcasts[0]
    assert (group, message["type"], message["action"]) == ("siem.alerts", "alert", "acknowledged")
    assert message["data"]["status"] == "acknowledged"
    assert message["data"]["assigned_to"] == "analyst"
    assert message["data"]["acknowledged_at"].endswith("Z")


@pytest.mark.django_db
def test_acknowledge_can_assign_someone_else(analyst, admin_user):
    alert = services.acknowledge_alert(make_alert(), actor=analyst, assigned_to="admin")
    assert alert.assigned_to == admin_user


@pytest.mark.django_db
def test_acknowledge_to_unknown_user_is_a_field_error(analyst):
    with pytest.raises(ValidationError) as info:
        services.acknowledge_alert(make_alert(), actor=analyst, assigned_to="nobody")
    assert "assigned_to" in info.value.message_dict
    assert Alert.objects.get().status == AlertStatus.NEW


@pytest.mark.django_db
def test_assign_broadcasts_updated(
    analyst, admin_user, broadcasts, django_capture_on_commit_callbacks
):
    alert = make_alert()
    with django_capture_on_commit_callbacks(execute=True):
        services.assign_alert(alert, actor=analyst, assigned_to="admin")
    assert kinds(broadcasts)[0] == ("siem.alerts", "alert", "updated")
    assert broadcasts[0][1]["data"]["assigned_to"] == "admin"


@pytest.mark.django_db
def test_resolve_twice_is_refused_with_a_clear_error(analyst):
    alert = services.resolve_alert(make_alert(), actor=analyst, resolution="blocked source IP")
    assert alert.status == AlertStatus.RESOLVED and not alert.is_open
    with pytest.raises(InvalidTransition, match="is 'resolved'; cannot change to 'resolved'"):
        services.resolve_alert(alert, actor=analyst)
    with pytest.raises(InvalidTransition):
        services.acknowledge_alert(alert, actor=analyst)
    assert [a.action for a in alert.activities.all()] == ["created", "resolved"]


@pytest.mark.django_db
def test_false_positive_is_a_resolution(analyst, broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alert = services.resolve_alert(make_alert(), actor=analyst, false_positive=True)
    assert alert.status == AlertStatus.FALSE_POSITIVE
    assert kinds(broadcasts)[-1] == ("siem.dashboard", "alert", "resolved")


@pytest.mark.django_db
def test_reopen_a_resolved_alert_through_update(analyst):
    alert = services.resolve_alert(make_alert(), actor=analyst)
    alert = services.update_alert(alert, actor=analyst, status="new")
    assert alert.status == AlertStatus.NEW and alert.is_open and alert.resolved_at is None


@pytest.mark.django_db
def test_update_refuses_fields_that_are_not_editable(analyst):
    with pytest.raises(ValidationError) as info:
        services.update_alert(make_alert(), actor=analyst, dedup_key="x")
    assert "dedup_key" in info.value.message_dict


@pytest.mark.django_db
def test_repeat_of_the_same_detection_counts_on_the_open_alert(
    broadcasts, django_capture_on_commit_callbacks
):
    fields = {
        "title": "Multiple failed login attempts",
        "severity": 4,
        "category": "brute_force",
        "hostname": "WS-001",
        "source": "rule",
    }
    with django_capture_on_commit_callbacks(execute=True):
        first, created = services.raise_or_repeat(dedup_key="bf:WS-001:bob:10.0.0.5", **fields)
        again, created_again = services.raise_or_repeat(
            dedup_key="bf:WS-001:bob:10.0.0.5", **fields
        )
    assert created and not created_again
    assert again.pk == first.pk and again.occurrence_count == 2
    assert [a for _g, _t, a in kinds(broadcasts)] == ["created", "created", "updated", "updated"]
    services.resolve_alert(again, actor=None)
    third, created_third = services.raise_or_repeat(dedup_key="bf:WS-001:bob:10.0.0.5", **fields)
    assert created_third and third.pk != first.pk  # a resolved alert is not reopened by repeats
