"""raise_or_repeat_many: a detection micro-batch's alerts in one transaction, same answers as
raise_or_repeat key by key, with a number of statements that does not grow with the repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import services
from alerts.models import Alert
from events.models import SecurityEvent

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIELDS = {
    "title": "Multiple failed login attempts",
    "severity": 4,
    "category": "brute_force",
    "hostname": "WS-001",
    "source": "rule",
    "rule_id": "builtin.brute_force",
}


def spec(key: str, **extra) -> dict:
    return {"dedup_key": key, **FIELDS, **extra}


def make_events(count: int) -> list[SecurityEvent]:
    return SecurityEvent.objects.bulk_create(
        SecurityEvent(computer="WS-001", event_code=4625, severity=3, timestamp=T0)
        for _ in range(count)
    )


def open_alert(key: str, **extra) -> Alert:
    alert, created = services.raise_or_repeat(
        dedup_key=key, seen_at=T0, first_seen=T0, **{**FIELDS, **extra}
    )
    assert created
    return alert


@pytest.mark.django_db
def test_repeats_count_on_open_alerts_and_new_keys_create(
    analyst, broadcasts, django_capture_on_commit_callbacks
):
    events = make_events(5)
    repeated = open_alert("bf|WS-001|bob")
    services.assign_alert(repeated, actor=analyst, assigned_to=analyst)
    closed = open_alert("bf|WS-001|eve")
    services.resolve_alert(closed, actor=analyst)
    broadcasts.clear()

    with django_capture_on_commit_callbacks(execute=True):
        results = services.raise_or_repeat_many(
            [
                spec("bf|WS-001|eve", events=events[3:], seen_at=T0 + timedelta(minutes=5)),
                spec(
                    "bf|WS-001|bob",
                    events=events[:3],
                    count=3,
                    seen_at=T0 + timedelta(minutes=2),
                    first_seen=T0 - timedelta(minutes=1),
                ),
                spec("bf|WS-002|amy", hostname="WS-002"),
            ]
        )

    # Key order, with created flags: a resolved alert is never reopened by repeats.
    assert [(alert.dedup_key, created) for alert, created in results] == [
        ("bf|WS-001|bob", False),
        ("bf|WS-001|eve", True),
        ("bf|WS-002|amy", True),
    ]
    repeated.refresh_from_db()
    assert repeated.occurrence_count == 4
    assert repeated.first_seen == T0 - timedelta(minutes=1)  # an earlier event widens the span
    assert repeated.last_seen == T0 + timedelta(minutes=2)
    assert sorted(repeated.events.values_list("pk", flat=True)) == [e.pk for e in events[:3]]
    assert results[1][0].pk != closed.pk
    assert sorted(results[1][0].events.values_list("pk", flat=True)) == [e.pk for e in events[3:]]

    sent = [(group, m["action"], m["data"]) for group, m in broadcasts if group == "siem.alerts"]
    assert [(action, data["alert_id"]) for _g, action, data in sent] == [
        ("created", results[1][0].pk),
        ("created", results[2][0].pk),
        ("updated", repeated.pk),
    ]
    update = sent[-1][2]
    assert update["occurrence_count"] == 4
    assert update["assigned_to"] == "analyst"  # the assignee is named, read in the same batch
    assert update["last_seen"] == "2026-11-20T12:02:00.000Z"


@pytest.mark.django_db
def test_repeats_cost_the_same_statements_for_ten_keys_as_for_thirty():
    keys = [f"bf|WS-{n:03d}|bob" for n in range(30)]
    for key in keys:
        open_alert(key)

    def statements(batch: list[str]) -> int:
        events = make_events(len(batch))  # new ones each time: each counts one occurrence
        with CaptureQueriesContext(connection) as queries:
            results = services.raise_or_repeat_many(
                [spec(key, events=[events[i]]) for i, key in enumerate(batch)]
            )
        assert not any(created for _alert, created in results)
        return len(queries)

    assert statements(keys[:10]) == statements(keys)
    counts = set(Alert.objects.values_list("occurrence_count", flat=True))
    assert counts == {2, 3}  # the first ten were repeated twice, the others once


@pytest.mark.django_db
def test_a_repeat_outside_the_window_opens_a_new_alert_and_keeps_the_old_one():
    old = open_alert("bf|WS-001|bob")
    results = services.raise_or_repeat_many(
        [spec("bf|WS-001|bob", seen_at=T0 + timedelta(days=3))], dedup_window=timedelta(days=1)
    )
    ((new, created),) = results
    assert created and new.pk != old.pk
    old.refresh_from_db()
    assert old.is_open and old.occurrence_count == 1 and old.dedup_key == f"bf|WS-001|bob#{old.pk}"


@pytest.mark.django_db
def test_every_repeat_links_its_events_and_counts_only_new_ones():
    alert = open_alert("bf|WS-001|bob", events=make_events(2), count=2)
    more = make_events(5)
    services.raise_or_repeat_many([spec("bf|WS-001|bob", events=more, count=5)])
    alert.refresh_from_db()
    assert alert.occurrence_count == 7 == alert.events.count()
    # The same events again (detection re-run over stored events): nothing counted twice.
    services.raise_or_repeat_many([spec("bf|WS-001|bob", events=more[:3] + make_events(1))])
    alert.refresh_from_db()
    assert alert.occurrence_count == 8 == alert.events.count()
