"""The dashboard's event figures from per-minute rollups equal the exact count over the events.

Random events in random order, many with timestamps in the past (late delivery) or slightly in
the future (clock skew), some scored by the AI analyzer; the rollups must give exactly what
counting the events table gives, for several moments `now`, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import random
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from events import rollups
from events.ai.base import Analysis
from events.models import EventRollup, SecurityEvent
from events.services import apply_analysis, create_events
from siem.statistics import compute_statistics

pytestmark = pytest.mark.django_db


def random_events(rng: random.Random, now, count: int) -> list[dict]:
    events = []
    for _ in range(count):
        # Mostly inside the last day, some older (outside the window), some minutes ahead.
        age = rng.choice(
            [
                timedelta(seconds=rng.uniform(0, 3600)),
                timedelta(seconds=rng.uniform(0, 86400)),
                timedelta(seconds=rng.uniform(86000, 30 * 3600)),
                -timedelta(seconds=rng.uniform(0, 180)),
            ]
        )
        events.append(
            {
                "computer": f"WS-{rng.randint(1, 5)}",
                "event_code": rng.choice([4624, 4625, 4672, 4688]),
                "severity": rng.randint(1, 5),
                "message": "m",
                "source_type": "Windows Security",
                "timestamp": now - age,
            }
        )
    return events


def ingest_and_score(rng: random.Random, now) -> None:
    for _ in range(6):  # batches, each with its own mix of old, new and future events
        created = create_events(random_events(rng, now, rng.randint(1, 60))).created
        for event in rng.sample(created, k=len(created) // 3):
            # Scores around AI_NOTIFY_THRESHOLD (70), below the alert threshold (85).
            apply_analysis(event, Analysis(rng.choice([10, 70, 71, 84]), "c", "d"), provider="x")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_the_exact_count_of_events(seed):
    rng = random.Random(seed)
    now = timezone.now()
    ingest_and_score(rng, now)

    assert SecurityEvent.objects.filter(ai_score__gt=70).exists()
    for moment in [
        now,
        now + timedelta(seconds=59),
        now + timedelta(minutes=3),
        now - timedelta(hours=2),
    ]:
        assert rollups.event_counts(moment) == rollups.exact_event_counts(moment)
    assert compute_statistics(now)["events"] == rollups.exact_event_counts(now)


def test_the_portable_update_or_insert_counts_the_same(monkeypatch):
    """The path other databases (SQL Server) take, run here on this test's database."""
    monkeypatch.setattr(rollups, "_upsert", rollups._update_or_insert)
    rng = random.Random(7)
    now = timezone.now()
    ingest_and_score(rng, now)

    assert rollups.event_counts(now) == rollups.exact_event_counts(now)
    assert rollups.event_counts(now)["total_24h"] > 0


def test_a_rolled_back_batch_counts_nothing():
    now = timezone.now()
    with pytest.raises(RuntimeError), transaction.atomic():
        create_events(random_events(random.Random(3), now, 10))
        raise RuntimeError("the request failed after storing")

    assert not EventRollup.objects.exists()
    assert rollups.event_counts(now)["total_24h"] == 0


def test_rebuild_recomputes_the_minutes_from_the_events():
    rng = random.Random(11)
    now = timezone.now()
    ingest_and_score(rng, now)
    expected = rollups.exact_event_counts(now)
    # Counters lost or wrong (e.g. events deleted by hand): rebuild from the events.
    EventRollup.objects.update(total=0, high_severity=7)

    call_command("rebuild_event_rollups", hours=48, stdout=io.StringIO())

    assert rollups.event_counts(now) == expected


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_into_the_same_minutes_count_exactly():
    """Six writers at once, each batch spanning the same few minutes (same rows, shards and
    lock order): no deadlock, no lost increment."""
    now = timezone.now()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(5):
                items = random_events(rng, now, 40)
                for item in items:
                    item["timestamp"] = now - timedelta(seconds=rng.uniform(0, 180))
                create_events(items)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert rollups.event_counts(now)["total_24h"] == 6 * 5 * 40
    assert rollups.event_counts(now) == rollups.exact_event_counts(now)
