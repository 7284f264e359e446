"""PostgreSQL: the events table partitioned by day of `received_at` (events/partitions.py,
migration 0007), partitions created ahead, expired days dropped whole by the retention purge
with what open alerts and incidents need kept, and an agent's retry that crosses midnight
stored once. Run with DATABASE_URL=postgres://… (skipped on SQLite, where the table is plain).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents import services as agent_services
from alerts import services as alert_services
from alerts.models import Alert
from events import partitions, rollups
from events import services as event_services
from events.models import SecurityEvent
from incidents import services as incident_services
from siem.tasks import purge_expired_data
from tests.test_retention import small_batches  # noqa: F401 - autouse: retention settings

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions: PostgreSQL only"),
]
AlertEvents = Alert.events.through


def home_of(event_ids) -> dict[int, str]:
    """Which partition (table) holds each event."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_id, tableoid::regclass::text FROM events_securityevent "
            "WHERE event_id = ANY(%s)",
            [list(event_ids)],
        )
        return dict(cursor.fetchall())


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def received(count: int, *, days_ago: int, agent=None, first_record: int | None = None):
    """`count` events stored now, then moved to `days_ago` (the UPDATE moves them to that day's
    partition, keeping their ids)."""
    moment = timezone.now() - timedelta(days=days_ago)
    items = [
        {"computer": "WS-1", "event_code": 4625, "severity": 4, "timestamp": moment}
        for _ in range(count)
    ]
    if first_record is not None:
        for offset, item in enumerate(items):
            item["agent_record_id"] = first_record + offset
    created = event_services.create_events(items, agent=agent).created
    SecurityEvent.objects.filter(pk__in=[e.pk for e in created]).update(received_at=moment)
    return created


def test_the_table_is_partitioned_with_days_created_ahead(settings):
    today = partitions.utc_day(timezone.now())
    assert partitions.is_partitioned()
    assert table_exists(partitions.DEFAULT)

    created = partitions.ensure_partitions(days_ahead=settings.EVENTS_PARTITION_DAYS_AHEAD + 3)

    days = {partition.day for partition in partitions.day_partitions()}
    ahead = {today + timedelta(days=n) for n in range(settings.EVENTS_PARTITION_DAYS_AHEAD + 4)}
    assert ahead <= days
    assert len(created) >= 3  # the migration made EVENTS_PARTITION_DAYS_AHEAD; three more now
    assert partitions.ensure_partitions(days_ahead=settings.EVENTS_PARTITION_DAYS_AHEAD + 3) == []


def test_an_event_lands_in_the_partition_of_its_day_and_django_works_by_pk():
    now = timezone.now()
    (event,) = event_services.create_events(
        [{"computer": "WS-1", "event_code": 4624, "severity": 2}]
    ).created
    assert home_of([event.pk]) == {event.pk: partitions.partition_name(partitions.utc_day(now))}

    SecurityEvent.objects.filter(pk=event.pk).update(ai_score=90)
    fetched = SecurityEvent.objects.get(pk=event.pk)
    assert fetched.ai_score == 90
    fetched.message = "edited"
    fetched.save()
    assert SecurityEvent.objects.get(pk=event.pk).message == "edited"
    fetched.delete()
    assert not SecurityEvent.objects.filter(pk=event.pk).exists()

    # A day no partition covers goes to DEFAULT, and that day is then never created over it.
    far = now + timedelta(days=400)
    SecurityEvent.objects.filter(
        pk=event_services.create_events([{"computer": "WS-1", "event_code": 4624, "severity": 2}])
        .created[0]
        .pk
    ).update(received_at=far)
    assert set(
        home_of(SecurityEvent.objects.filter(received_at=far).values_list("pk", flat=True)).values()
    ) == {partitions.DEFAULT}
    assert partitions.create_partition(partitions.utc_day(far)) is False


def test_retention_drops_an_expired_day_whole_and_keeps_what_open_alerts_need():
    old_day = partitions.utc_day(timezone.now() - timedelta(days=100))
    assert partitions.create_partition(old_day)
    free = received(4, days_ago=100)
    of_open_alert = received(2, days_ago=100)
    of_closed_alert = received(2, days_ago=100)
    of_open_incident = received(1, days_ago=100)
    recent = received(3, days_ago=10)
    old_name = partitions.partition_name(old_day)
    assert set(home_of(e.pk for e in free + of_open_alert).values()) == {old_name}

    open_alert = alert_services.create_alert(
        title="open", severity=4, category="c", events=of_open_alert + recent[:1]
    )
    closed_alert = alert_services.create_alert(
        title="closed", severity=4, category="c", events=of_closed_alert
    )
    alert_services.resolve_alert(closed_alert, actor=None)
    in_incident = alert_services.create_alert(
        title="in incident", severity=4, category="c", events=of_open_incident
    )
    alert_services.resolve_alert(in_incident, actor=None)
    incident_services.create_incident(title="i", severity=4, alerts=[in_incident])

    result = purge_expired_data()

    assert result["partitions_dropped"] == 1
    assert not table_exists(old_name)
    kept = of_open_alert + of_open_incident
    assert result["events_deleted"] == len(free + of_closed_alert)
    assert result["events_kept"] == len(kept)
    # The kept events are still there, same ids, now in DEFAULT; their links hold.
    assert set(SecurityEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept + recent}
    assert set(home_of(e.pk for e in kept).values()) == {partitions.DEFAULT}
    assert set(open_alert.events.values_list("pk", flat=True)) == {
        e.pk for e in of_open_alert + recent[:1]
    }
    assert set(in_incident.events.values_list("pk", flat=True)) == {e.pk for e in of_open_incident}
    # The closed alert keeps no link to events that no longer exist.
    assert not AlertEvents.objects.filter(alert=closed_alert).exists()
    assert not AlertEvents.objects.exclude(
        securityevent_id__in=SecurityEvent.objects.values("pk")
    ).exists()

    # Once the alert is closed, the next purge removes its events from DEFAULT (batched).
    alert_services.resolve_alert(open_alert, actor=None)
    again = purge_expired_data()
    assert again["events_deleted"] == len(of_open_alert)
    assert set(SecurityEvent.objects.values_list("pk", flat=True)) == {
        e.pk for e in of_open_incident + recent
    }


def test_rollups_equal_exact_counts_after_a_day_is_dropped():
    old_day = partitions.utc_day(timezone.now() - timedelta(days=95))
    assert partitions.create_partition(old_day)
    received(3, days_ago=95)
    event_services.create_events(
        [{"computer": "WS-2", "event_code": 4625, "severity": 5} for _ in range(4)]
    )
    now = timezone.now()

    assert purge_expired_data()["partitions_dropped"] == 1

    assert rollups.event_counts(now) == rollups.exact_event_counts(now)
    assert rollups.event_counts(now)["total_24h"] == 4
    assert rollups.event_counts(now)["high_severity"] == 4


def test_an_agent_retry_that_crosses_midnight_stores_nothing_twice():
    agent, _token = agent_services.register_agent(hostname="DC-MIDNIGHT")
    yesterday = partitions.utc_day(timezone.now() - timedelta(days=1))
    partitions.create_partition(yesterday)
    first = received(5, days_ago=1, agent=agent, first_record=1000)
    assert set(home_of(e.pk for e in first).values()) == {partitions.partition_name(yesterday)}
    batch = [
        {"computer": "DC-MIDNIGHT", "event_code": 4625, "severity": 4, "agent_record_id": n}
        for n in range(1000, 1007)  # the five stored before midnight, and two new ones
    ]

    retry = event_services.create_events(batch, agent=agent)

    assert retry.duplicates == 5 and len(retry.created) == 2
    assert SecurityEvent.objects.filter(agent=agent).count() == 7
    today = partitions.partition_name(partitions.utc_day(timezone.now()))
    assert set(home_of(e.pk for e in retry.created).values()) == {today}

    # The race: a retry whose first check ran before the original committed. The check made
    # again under the agent's lock, in the insert's transaction, sees yesterday's partition.
    late = [event_services._build(item, agent=agent, received_at=timezone.now()) for item in batch]
    result = event_services.IngestResult()
    assert event_services._store(late, agent=agent, result=result) == []
    assert result.duplicates == 7
    assert SecurityEvent.objects.filter(agent=agent).count() == 7


def test_a_day_left_detached_by_an_interrupted_purge_is_dropped_by_the_next():
    old_day = partitions.utc_day(timezone.now() - timedelta(days=120))
    assert partitions.create_partition(old_day)
    lost = received(2, days_ago=120)
    closed = alert_services.create_alert(title="closed", severity=4, category="c", events=lost)
    alert_services.resolve_alert(closed, actor=None)
    name = partitions.partition_name(old_day)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE events_securityevent DETACH PARTITION {name}")
    assert [p.name for p in partitions.detached_days()] == [name]

    purge_expired_data()

    assert not table_exists(name) and partitions.detached_days() == []
    assert not AlertEvents.objects.filter(alert=closed).exists()


def test_the_migration_kept_every_index_and_no_foreign_key_references_events():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'events_securityevent'")
        indexes = {name for (name,) in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid = 'events_securityevent'::regclass"
        )
        references = cursor.fetchone()[0]
    model = {index.name for index in SecurityEvent._meta.indexes}
    extra = {"event_search_text_trgm_idx", "event_raw_path_ops_idx", "event_agent_record_unique"}
    assert model | extra | {"events_securityevent_pkey"} <= indexes
    assert references == 0
