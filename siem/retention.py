"""Retention: events older than EVENTS_RETENTION_DAYS, closed alerts older than
ALERTS_RETENTION_DAYS, removed daily (Celery beat, `siem.tasks.purge_expired_data`, or
`manage.py purge_expired`) without blocking ingestion.

On PostgreSQL the events table is partitioned by day of `received_at` (events/partitions.py):
each day wholly past the retention period is detached and dropped whole, after the events an
open alert or incident needs were copied out of it into the DEFAULT partition (same keys).
Everything else (SQLite, SQL Server, the DEFAULT partition, closed alerts) is deleted in small
batches, each its own short transaction: a batch holds its row locks for milliseconds, never
the table, so ingestion goes on around it (docs/operations.md, "Retention and statistics";
measured in docs/performance.md, "Scale").

What is kept whatever its age: events linked to an open alert, or to any alert of an incident
that is not closed; closed alerts that belong to an incident that is not closed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.detection.hits import purge_old_hits
from alerts.models import Alert
from events import partitions
from events.models import EventRollup, SecurityEvent
from incidents.models import IncidentStatus

logger = logging.getLogger(__name__)

OPEN_INCIDENT = [status for status in IncidentStatus.values if status != IncidentStatus.CLOSED]
AlertEvents = Alert.events.through


@dataclass
class PurgeResult:
    events_deleted: int = 0
    events_kept: int = 0
    partitions_dropped: int = 0
    # The longest a DETACH transaction waited for and held the events table's exclusive lock:
    # inserts queue behind it that long at most.
    longest_lock_seconds: float = 0.0
    alerts_deleted: int = 0
    rollups_deleted: int = 0
    rule_hit_rows_deleted: int = 0
    batches: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def purge_expired(now: datetime | None = None) -> PurgeResult:
    """Everything past its retention, with the settings' limits (0 days: keep forever)."""
    now = now or timezone.now()
    started = time.monotonic()
    result = PurgeResult()
    if settings.EVENTS_RETENTION_DAYS:
        cutoff = now - timedelta(days=settings.EVENTS_RETENTION_DAYS)
        if partitions.is_partitioned():
            # Whole days: the day that holds the cutoff goes when it has wholly expired.
            cutoff = partitions.day_start(partitions.utc_day(cutoff))
            drop_expired_partitions(cutoff, result)
        purge_events(cutoff, result)
    if settings.ALERTS_RETENTION_DAYS:
        purge_closed_alerts(now - timedelta(days=settings.ALERTS_RETENTION_DAYS), result)
    result.rule_hit_rows_deleted = purge_old_hits(now)  # hour rows past the rules' 7-day window
    result.seconds = round(time.monotonic() - started, 3)
    logger.info("Retention purge: %s", result.as_dict())
    return result


def purge_events(cutoff: datetime, result: PurgeResult | None = None) -> PurgeResult:
    """Delete events received before `cutoff`, except those open alerts and incidents need.

    1. Walk the candidates oldest first by (received_at, event_id), RETENTION_BATCH_SIZE at a
       time, from where the previous batch ended: kept events are read once, not every batch.
    2. Set aside those linked to an open alert or to an alert of an open incident.
    3. Delete the rest with their alert links in one short transaction; pause
       RETENTION_BATCH_PAUSE_MS so that ingestion has the disk between batches.
    4. Drop the per-minute rollups older than the cutoff (they count events no longer there).

    Retention goes by `received_at` (how long the server has held an event), not by the event
    time an agent reports: an event with a wrong, ancient timestamp still stays the full period.
    """
    result = result or PurgeResult()
    size, pause = settings.RETENTION_BATCH_SIZE, settings.RETENTION_BATCH_PAUSE_MS / 1000
    candidates = SecurityEvent.objects.filter(received_at__lt=cutoff).order_by(
        "received_at", "event_id"
    )
    position = None
    while True:
        rows = candidates
        if position is not None:
            rows = rows.filter(received_at__gte=position[0]).exclude(
                received_at=position[0], event_id__lte=position[1]
            )
        batch = list(rows.values_list("event_id", "received_at")[:size])
        if not batch:
            break
        position = (batch[-1][1], batch[-1][0])
        ids = [event_id for event_id, _received in batch]
        try:
            deleted, kept = _delete_events(ids)
        except DatabaseError:
            # A concurrent write linked one of these events to an alert: leave the batch to the
            # next run rather than fail the purge.
            logger.warning("Retention: batch of %d events skipped (concurrent change)", len(ids))
            continue
        result.events_deleted += deleted
        result.events_kept += kept
        result.batches += 1
        if pause:
            time.sleep(pause)
    rollups = EventRollup.objects.filter(minute__lt=cutoff)
    result.rollups_deleted += rollups.delete()[0]
    return result


def needed(links):
    """The alert↔event links (a queryset of them) that keep their event: of an open alert, or
    of any alert of an incident that is not closed."""
    return links.filter(Q(alert__is_open=True) | Q(alert__incidents__status__in=OPEN_INCIDENT))


def _delete_events(ids: list[int]) -> tuple[int, int]:
    with transaction.atomic():
        needed_ids = set(
            needed(AlertEvents.objects.filter(securityevent_id__in=ids)).values_list(
                "securityevent_id", flat=True
            )
        )
        doomed = [event_id for event_id in ids if event_id not in needed_ids]
        if doomed:
            # Only the keys are read; the alert links go first, then the events.
            SecurityEvent.objects.filter(pk__in=doomed).only("pk").delete()
    return len(doomed), len(ids) - len(doomed)


# DETACH waits at most PARTITION_LOCK_TIMEOUT_MS for its lock; tried this many times, further
# and further apart, before the day is left to the next run.
DETACH_ATTEMPTS = 5


def drop_expired_partitions(cutoff: datetime, result: PurgeResult | None = None) -> PurgeResult:
    """PostgreSQL: drop every day partition that ends at or before `cutoff`, oldest first.

    For each day, in one short transaction under lock_timeout (PARTITION_LOCK_TIMEOUT_MS):
    1. DETACH it. This takes an exclusive lock on the events table for the time of a catalog
       change (DETACH … CONCURRENTLY is not allowed next to a DEFAULT partition): ingestion
       waits at most the lock timeout; on a timeout the attempt is retried a little later.
    2. Copy the events open alerts and incidents need (found from the link side: the links of
       open alerts whose event ids fall in the day's id range) back into the events table:
       with the day's range gone they land in the DEFAULT partition, with the same keys, so
       their links hold. They are never missing from the table: same transaction.
    Then, without any lock that ingestion needs: DROP the detached table, and delete the links
    of the events dropped (the links' foreign key is gone on PostgreSQL: migration 0007). The
    per-agent de-duplication needs no cleanup: it is the events themselves.
    """
    result = result or PurgeResult()
    for partition in partitions.day_partitions():
        if partition.upper > cutoff:
            break
        dropped = _drop_partition(partition)
        if dropped is None:
            continue
        result.partitions_dropped += 1
        # The kept ones are counted by the batched pass over DEFAULT that follows.
        result.events_deleted += dropped[0]
        result.longest_lock_seconds = max(result.longest_lock_seconds, dropped[2])
    _drop_leftovers(cutoff)
    return result


def _drop_partition(partition: partitions.Partition) -> tuple[int, int, float] | None:
    """(events dropped, events kept, seconds the exclusive lock was held), or None if the
    table stayed busy."""
    qn = connection.ops.quote_name
    table, name = qn(partitions.PARENT), qn(partition.name)
    columns = ", ".join(qn(field.column) for field in SecurityEvent._meta.concrete_fields)
    for attempt in range(DETACH_ATTEMPTS):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                partitions.set_lock_timeout(cursor)
                locked = time.monotonic()  # from the request: ingestion queues behind it
                cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
                cursor.execute(
                    f"SELECT min(event_id), max(event_id), count(*) FROM {name}"  # noqa: S608 - names quoted
                )
                low, high, total = cursor.fetchone()
                kept: list[int] = []
                if total:
                    kept = list(
                        needed(
                            AlertEvents.objects.filter(
                                securityevent_id__gte=low, securityevent_id__lte=high
                            )
                        )
                        .values_list("securityevent_id", flat=True)
                        .distinct()
                    )
                if kept:
                    cursor.execute(
                        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {name} "  # noqa: S608 - names quoted
                        "WHERE event_id = ANY(%s)",
                        [kept],
                    )
                    kept_count = cursor.rowcount
                else:
                    kept_count = 0
            held = time.monotonic() - locked
            break
        except OperationalError as error:  # lock_timeout: ingestion held the table
            logger.info("Retention: %s not detached yet (%s)", partition.name, error)
            time.sleep(0.5 * 2**attempt)
        except DatabaseError as error:  # a purge running at the same time detached it first
            logger.info("Retention: %s not detached here (%s)", partition.name, error)
            return None
    else:
        logger.warning("Retention: %s left to the next run (table busy)", partition.name)
        return None
    _drop_detached(name, low, high)
    logger.info(
        "Retention: dropped %s (%d events, %d kept; table locked %.3f s)",
        partition.name,
        total - kept_count,
        kept_count,
        held,
    )
    return total - kept_count, kept_count, round(held, 4)


def _drop_detached(name: str, low: int | None, high: int | None) -> None:
    """DROP a detached day (its kept events already copied out), then delete the alert links
    whose event is gone: those of the dropped events, and of any event linked while the day
    was being detached, which the copy could not see."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        # Inside a caller's transaction, deferred foreign-key checks of rows written to the day
        # in that transaction would forbid the DROP: run them now (a no-op in autocommit).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP TABLE {name}")
        if low is not None:
            cursor.execute(
                f"DELETE FROM {qn(AlertEvents._meta.db_table)} link "  # noqa: S608 - names quoted
                "WHERE link.securityevent_id BETWEEN %s AND %s AND NOT EXISTS (SELECT 1 FROM "
                f"{qn(partitions.PARENT)} event WHERE event.event_id = link.securityevent_id)",
                [low, high],
            )


def _drop_leftovers(cutoff: datetime) -> None:
    """Days detached by a purge that stopped before its DROP (their kept events were copied
    in the DETACH's transaction): dropped now."""
    qn = connection.ops.quote_name
    for partition in partitions.detached_days():
        if partition.upper <= cutoff:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT min(event_id), max(event_id) FROM {qn(partition.name)}"  # noqa: S608 - names quoted
                )
                low, high = cursor.fetchone()
            _drop_detached(qn(partition.name), low, high)
            logger.info("Retention: dropped %s, left detached by an earlier run", partition.name)


def purge_closed_alerts(cutoff: datetime, result: PurgeResult | None = None) -> PurgeResult:
    """Delete alerts closed (resolved or false positive) before `cutoff`, with their activity
    and event links, in batches; alerts of an incident that is not closed stay."""
    result = result or PurgeResult()
    size = settings.RETENTION_BATCH_SIZE
    expired = (
        Alert.objects.filter(is_open=False)
        .alias(closed_at=Coalesce("resolved_at", "updated_at"))
        .filter(closed_at__lt=cutoff)
        .exclude(incidents__status__in=OPEN_INCIDENT)
        .order_by("alert_id")
    )
    last = 0
    while True:
        ids = list(expired.filter(alert_id__gt=last).values_list("alert_id", flat=True)[:size])
        if not ids:
            break
        last = ids[-1]
        with transaction.atomic():
            # Re-checked inside the transaction: an alert reopened meanwhile is not deleted.
            doomed = Alert.objects.filter(pk__in=ids, is_open=False).exclude(
                incidents__status__in=OPEN_INCIDENT
            )
            result.alerts_deleted += doomed.delete()[1].get(Alert._meta.label, 0)
        result.batches += 1
    return result
