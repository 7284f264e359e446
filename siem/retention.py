"""Retention: events older than EVENTS_RETENTION_DAYS, closed alerts older than
ALERTS_RETENTION_DAYS, removed daily (Celery beat, `siem.tasks.purge_expired_data`, or
`manage.py purge_expired`) without blocking ingestion.

Deletes go in small batches, each its own short transaction, on every database: a batch holds
its row locks for milliseconds, never the table, so ingestion goes on around it
(docs/operations.md, "Retention and statistics"; measured in docs/performance.md, "Scale").
PostgreSQL partitioning, which would drop a day whole, is deferred for the reasons given there.

What is kept whatever its age: events linked to an open alert, or to any alert of an incident
that is not closed; closed alerts that belong to an incident that is not closed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts.detection.hits import purge_old_hits
from alerts.models import Alert
from events.models import EventRollup, SecurityEvent
from incidents.models import IncidentStatus

logger = logging.getLogger(__name__)

OPEN_INCIDENT = [status for status in IncidentStatus.values if status != IncidentStatus.CLOSED]
AlertEvents = Alert.events.through


@dataclass
class PurgeResult:
    events_deleted: int = 0
    events_kept: int = 0
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
        purge_events(now - timedelta(days=settings.EVENTS_RETENTION_DAYS), result)
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


def _delete_events(ids: list[int]) -> tuple[int, int]:
    with transaction.atomic():
        needed = set(
            AlertEvents.objects.filter(securityevent_id__in=ids)
            .filter(Q(alert__is_open=True) | Q(alert__incidents__status__in=OPEN_INCIDENT))
            .values_list("securityevent_id", flat=True)
        )
        doomed = [event_id for event_id in ids if event_id not in needed]
        if doomed:
            # Only the keys are read; the alert links go first, then the events.
            SecurityEvent.objects.filter(pk__in=doomed).only("pk").delete()
    return len(doomed), len(ids) - len(doomed)


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
