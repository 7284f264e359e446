"""Retention: old events and old closed alerts go, what open alerts and incidents need stays.

Batches of 2 so that the keyset walk over several batches (with kept events in between) is
exercised; run on SQLite and on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts import services as alert_services
from alerts.models import Alert, AlertActivity
from events import rollups
from events.models import EventRollup, SecurityEvent
from events.services import create_events
from incidents import services as incident_services
from siem.tasks import purge_expired_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_batches(settings):
    settings.EVENTS_RETENTION_DAYS = 90
    settings.ALERTS_RETENTION_DAYS = 365
    settings.RETENTION_BATCH_SIZE = 2
    settings.RETENTION_BATCH_PAUSE_MS = 0


def events(count: int, *, days_ago: int) -> list[SecurityEvent]:
    moment = timezone.now() - timedelta(days=days_ago)
    created = create_events(
        [
            {"computer": "WS-1", "event_code": 4625, "severity": 4, "timestamp": moment}
            for _ in range(count)
        ]
    ).created
    SecurityEvent.objects.filter(pk__in=[e.pk for e in created]).update(received_at=moment)
    return created


def alert(linked=(), *, closed_days_ago: int | None = None, title: str = "a") -> Alert:
    created = alert_services.create_alert(title=title, severity=4, category="c", events=linked)
    if closed_days_ago is not None:
        alert_services.resolve_alert(created, actor=None)
        closed = timezone.now() - timedelta(days=closed_days_ago)
        Alert.objects.filter(pk=created.pk).update(resolved_at=closed, updated_at=closed)
    return created


def closed_incident(alerts: list[Alert]):
    incident = incident_services.create_incident(title="i", severity=4, alerts=alerts)
    return incident_services.close_incident(incident, actor=None)


def test_old_events_go_unless_an_open_alert_or_incident_needs_them():
    free = events(5, days_ago=100)
    of_open_alert = events(2, days_ago=100)
    of_closed_alert = events(2, days_ago=100)
    of_open_incident = events(1, days_ago=100)
    of_closed_incident = events(1, days_ago=100)
    recent = events(3, days_ago=10)
    alert(of_open_alert)
    alert(of_closed_alert, closed_days_ago=5)
    incident_services.create_incident(
        title="open", severity=4, alerts=[alert(of_open_incident, closed_days_ago=5)]
    )
    closed_incident([alert(of_closed_incident, closed_days_ago=5)])

    result = purge_expired_data()

    kept = set(SecurityEvent.objects.values_list("pk", flat=True))
    assert kept == {e.pk for e in of_open_alert + of_open_incident + recent}
    assert result["events_deleted"] == len(free + of_closed_alert + of_closed_incident)
    assert result["events_kept"] == len(of_open_alert + of_open_incident)
    # Recent closed alerts stay, with their (remaining) links.
    assert Alert.objects.count() == 4


def test_closed_alerts_past_the_limit_go_open_ones_and_those_of_open_incidents_stay():
    linked = events(2, days_ago=1)
    old_closed = alert(linked, closed_days_ago=400, title="old closed")
    recent_closed = alert(closed_days_ago=300, title="recent closed")
    old_open = alert(title="old open")
    Alert.objects.filter(pk=old_open.pk).update(created_at=timezone.now() - timedelta(days=400))
    in_open_incident = alert(closed_days_ago=400, title="in open incident")
    incident_services.create_incident(title="open", severity=4, alerts=[in_open_incident])
    in_closed_incident = alert(closed_days_ago=400, title="in closed incident")
    closed_incident([in_closed_incident])

    result = purge_expired_data()

    assert set(Alert.objects.values_list("title", flat=True)) == {
        "recent closed",
        "old open",
        "in open incident",
    }
    assert result["alerts_deleted"] == 2
    assert not AlertActivity.objects.filter(alert_id=old_closed.pk).exists()
    # The alert's events follow their own retention, not the alert's.
    assert SecurityEvent.objects.filter(pk__in=[e.pk for e in linked]).count() == 2
    assert recent_closed.pk in set(Alert.objects.values_list("pk", flat=True))


def test_rollups_older_than_the_events_retention_go_and_statistics_stay_exact():
    events(3, days_ago=100)
    events(2, days_ago=0)
    now = timezone.now()
    assert EventRollup.objects.filter(minute__lt=now - timedelta(days=90)).exists()

    purge_expired_data()

    assert not EventRollup.objects.filter(minute__lt=now - timedelta(days=90)).exists()
    assert rollups.event_counts(now) == rollups.exact_event_counts(now)
    assert rollups.event_counts(now)["total_24h"] == 2


def test_zero_days_keeps_everything(settings):
    settings.EVENTS_RETENTION_DAYS = settings.ALERTS_RETENTION_DAYS = 0
    events(3, days_ago=1000)
    alert(closed_days_ago=1000)

    assert purge_expired_data()["events_deleted"] == 0
    assert SecurityEvent.objects.count() == 3 and Alert.objects.count() == 1


def test_the_command_reports_what_it_purged():
    events(3, days_ago=100)
    out = io.StringIO()

    call_command("purge_expired", stdout=out)

    assert out.getvalue().startswith("3 event(s) deleted, 0 kept for open alerts or incidents")
