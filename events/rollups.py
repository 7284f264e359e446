"""Per-minute event counters behind the dashboard statistics (O(1) of history).

The dashboard's event figures count events by **event time** (`timestamp`) over the 1,440 whole
minutes (UTC) that end with the current one. Counting them in the events table costs a scan of a
day of events (211 ms at 1 M events, growing with the rate); here each ingest batch adds its events
to their minutes' `EventRollup` rows in the insert's own transaction, and the statistics sum at
most 1,440 × ROLLUP_SHARDS small rows. An event that arrives late (old timestamp) lands in its own
minute, so late and out-of-order events count exactly as the query over the events would.

Writers: `events.services` (`count_new_events` after the insert, `count_ai_attack` when the AI
analyzer stores a score above AI_NOTIFY_THRESHOLD). Retention removes rows older than the events.
`rebuild_rollups` recomputes a window from the events (after changing AI_NOTIFY_THRESHOLD, or after
events were deleted by hand): `manage.py rebuild_event_rollups`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone

from events.models import EventRollup, SecurityEvent
from siem.choices import Severity

# Rows per minute: concurrent ingest transactions pick one at random, so that two of them rarely
# wait on the same row lock until the first commits.
ROLLUP_SHARDS = 4
WINDOW = timedelta(hours=24)
LAST_HOUR = timedelta(hours=1)

Counts = list[int]  # [total, high_severity, ai_attacks]


def minute_of(moment: datetime) -> datetime:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def statistics_window(now: datetime) -> tuple[datetime, datetime, datetime]:
    """(start, hour_start, end): the last 24 h and the last hour as whole minutes, end exclusive."""
    end = minute_of(now) + timedelta(minutes=1)
    return end - WINDOW, end - LAST_HOUR, end


def event_counts(now: datetime) -> dict[str, int]:
    """The `events` part of the statistics from the rollups: one indexed range query."""
    start, hour_start, end = statistics_window(now)
    zero = 0
    return EventRollup.objects.filter(minute__gte=start, minute__lt=end).aggregate(
        total_24h=Coalesce(Sum("total"), zero),
        last_hour=Coalesce(Sum("total", filter=Q(minute__gte=hour_start)), zero),
        high_severity=Coalesce(Sum("high_severity"), zero),
        ai_attacks=Coalesce(Sum("ai_attacks"), zero),
    )


def exact_event_counts(now: datetime) -> dict[str, int]:
    """The same figures counted in the events table (the definition the rollups must equal)."""
    start, hour_start, end = statistics_window(now)
    return SecurityEvent.objects.filter(timestamp__gte=start, timestamp__lt=end).aggregate(
        total_24h=Count("pk"),
        last_hour=Count("pk", filter=Q(timestamp__gte=hour_start)),
        high_severity=Count("pk", filter=Q(severity__gte=Severity.HIGH)),
        ai_attacks=Count("pk", filter=Q(ai_score__gt=settings.AI_NOTIFY_THRESHOLD)),
    )


def count_new_events(events: Iterable[SecurityEvent]) -> None:
    """Add freshly inserted events to their minutes. Call inside the insert's transaction, so
    that the counters and the rows commit (or roll back) together."""
    buckets: dict[datetime, Counts] = {}
    for event in events:
        counts = buckets.setdefault(minute_of(event.timestamp), [0, 0, 0])
        counts[0] += 1
        if event.severity >= Severity.HIGH:
            counts[1] += 1
    # No AI attacks here: ingestion never sets ai_score; `count_ai_attack` counts them once, when
    # the analyzer stores the verdict.
    _add(buckets)


def count_ai_attack(event: SecurityEvent) -> None:
    """One more AI attack in the event's minute (its score just went above the threshold)."""
    _add({minute_of(event.timestamp): [0, 0, 1]})


def _add(buckets: dict[datetime, Counts]) -> None:
    if not buckets:
        return
    shard = random.randrange(ROLLUP_SHARDS)  # noqa: S311 - load spreading, not security
    # Sorted minutes: two transactions lock the rows of one shard in the same order (no deadlock).
    rows = sorted(buckets.items())
    if connection.vendor in {"postgresql", "sqlite"}:
        _upsert(rows, shard)
    else:
        _update_or_insert(rows, shard)


def _upsert(rows: list[tuple[datetime, Counts]], shard: int) -> None:
    """One `INSERT … ON CONFLICT DO UPDATE SET n = n + excluded.n` (PostgreSQL, SQLite ≥ 3.24).

    Django's `bulk_create(update_conflicts=True)` would overwrite the counters with the new
    values (`SET n = excluded.n`); an increment needs the expression, hence SQL.
    """
    qn = connection.ops.quote_name
    table = qn(EventRollup._meta.db_table)
    columns = ("total", "high_severity", "ai_attacks")
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    updates = ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in columns)
    params: list = []
    for minute, counts in rows:
        params += [connection.ops.adapt_datetimefield_value(minute), shard, *counts]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({qn('minute')}, {qn('shard')}, "  # noqa: S608 - names quoted
            f"{', '.join(qn(c) for c in columns)}) VALUES {values} "
            f"ON CONFLICT ({qn('minute')}, {qn('shard')}) DO UPDATE SET {updates}",
            params,
        )


def _update_or_insert(rows: list[tuple[datetime, Counts]], shard: int) -> None:
    """Any other database (SQL Server): UPDATE the row, INSERT it if missing; a concurrent
    INSERT of the same minute makes ours fail on the unique constraint, and we UPDATE again."""
    for minute, (total, high, ai) in rows:
        for _attempt in range(2):
            rollup = EventRollup.objects.filter(minute=minute, shard=shard)
            if rollup.update(
                total=F("total") + total,
                high_severity=F("high_severity") + high,
                ai_attacks=F("ai_attacks") + ai,
            ):
                break
            try:
                with transaction.atomic():
                    EventRollup.objects.create(
                        minute=minute, shard=shard, total=total, high_severity=high, ai_attacks=ai
                    )
                break
            except IntegrityError:
                continue


def rebuild_rollups(start: datetime, end: datetime) -> int:
    """Recompute the counters of the minutes in [start, end) from the events; returns the number
    of minutes written. Counts made by ingestion running at the same time may be lost: run it
    while ingestion is quiet (or rebuild again)."""
    start, end = minute_of(start), minute_of(end)
    threshold = settings.AI_NOTIFY_THRESHOLD
    per_minute = (
        SecurityEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
        .annotate(bucket=TruncMinute("timestamp", tzinfo=UTC))
        .values("bucket")
        .annotate(
            total=Count("pk"),
            high_severity=Count("pk", filter=Q(severity__gte=Severity.HIGH)),
            ai_attacks=Count("pk", filter=Q(ai_score__gt=threshold)),
        )
        .order_by()
    )
    with transaction.atomic():
        EventRollup.objects.filter(minute__gte=start, minute__lt=end).delete()
        rows = [
            EventRollup(
                minute=row["bucket"],
                shard=0,
                total=row["total"],
                high_severity=row["high_severity"],
                ai_attacks=row["ai_attacks"],
            )
            for row in per_minute
        ]
        EventRollup.objects.bulk_create(rows, batch_size=500)
    return len(rows)
