"""Writes of security events. Events are stored first; broadcasting and detection follow commit
through the registered post-commit pipeline (`events.pipeline`: outbox rows written in the same
transaction, so the work survives a crash or a Redis outage)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from events import pipeline, rollups
from events.models import AnalysisStatus, SecurityEvent
from events.normalize import event_fields
from events.query import build_search_text
from realtime.manager import get_connection_manager
from siem import metrics

logger = logging.getLogger(__name__)

# Model fields a caller may set; anything else is ignored (callers validate first).
EVENT_FIELDS = (
    "timestamp",
    "computer",
    "event_code",
    "severity",
    "message",
    "source_type",
    "user_name",
    "source_ip",
    "raw",
    "agent_record_id",
)


@dataclass
class IngestResult:
    created: list[SecurityEvent] = field(default_factory=list)
    duplicates: int = 0


def _build(item: Mapping[str, Any], *, agent, received_at) -> SecurityEvent:
    values = {name: item[name] for name in EVENT_FIELDS if name in item and item[name] is not None}
    values.setdefault("timestamp", received_at)
    if agent is not None and not values.get("computer"):
        values["computer"] = agent.hostname
    values["search_text"] = build_search_text(values, event_fields(values.get("raw") or {}))
    return SecurityEvent(
        agent=agent, received_at=received_at, ai_status=AnalysisStatus.PENDING, **values
    )


def create_events(items: Iterable[Mapping[str, Any]], *, agent=None, actor=None) -> IngestResult:
    """Store a batch of already-validated events, all or nothing.

    1. Build the rows (one `received_at` for the batch; `computer` defaults to the agent's host).
    2. Drop records the agent already delivered (same agent record id): a retried batch is a no-op
       (on PostgreSQL, whose partitioned table has no unique index on the record id, checked in
       the insert's transaction under a per-agent lock; elsewhere before it, and the unique
       index catches a concurrent retry).
    3. Insert in one transaction (`insert_rows`: COPY on PostgreSQL, bulk elsewhere).
    4. In the same transaction, owe the batch to every registered post-commit step (outbox);
       after commit the steps run here at once (broadcast, detection), or later by the relay
       if this process dies first (`events.pipeline`).
    5. A batch that was all duplicates may be the retry of one whose process died before its
       post-commit work was done: a relay pass completes whatever is due.
    """
    received_at = timezone.now()
    rows = [_build(item, agent=agent, received_at=received_at) for item in items]
    result = IngestResult()
    if agent is not None and connection.vendor != "postgresql":
        # PostgreSQL checks once, under the agent's lock, in the insert's transaction (`_store`).
        rows, result.duplicates = _without_delivered(rows, agent)
    if not rows:
        _complete_unfinished_work(result)
        return result
    try:
        result.created = _store(rows, agent=agent, result=result)
    except IntegrityError:
        if agent is None:
            raise
        # A concurrent retry of the same batch won the race: store what is still missing.
        rows, duplicates = _without_delivered(rows, agent)
        result.duplicates += duplicates
        result.created = _store(rows)
    _complete_unfinished_work(result)
    return result


def create_event(item: Mapping[str, Any], *, agent=None, actor=None) -> SecurityEvent:
    result = create_events([item], agent=agent, actor=actor)
    if result.created:
        return result.created[0]
    return SecurityEvent.objects.get(agent=agent, agent_record_id=item.get("agent_record_id"))


def _store(rows: list[SecurityEvent], *, agent=None, result=None) -> list[SecurityEvent]:
    with transaction.atomic():
        if agent is not None and connection.vendor == "postgresql":
            rows = _without_delivered_locked(rows, agent, result)
            if not rows:
                return []
        created = insert_rows(rows)
        rollups.count_new_events(created)  # dashboard counters commit with the rows
        pipeline.enqueue(created)
    metrics.EVENTS_INGESTED.inc(len(created))
    return created


def _complete_unfinished_work(result: IngestResult) -> None:
    """An agent's retry found events already stored: finish what a crashed original left (a
    relay pass over due outbox rows; nothing to do in the usual case, one indexed query)."""
    if result.duplicates:
        # After the caller's transaction (at once if there is none); robust: the retry's
        # answer must not depend on the relay.
        transaction.on_commit(lambda: pipeline.drain(limit=20, budget_sec=5.0), robust=True)


def insert_rows(rows: list[SecurityEvent]) -> list[SecurityEvent]:
    """Insert new events with their keys set: COPY on PostgreSQL, bulk where the database
    returns keys, row by row on SQL Server. Call inside a transaction."""
    if connection.vendor == "postgresql":
        return _copy_insert(rows)
    if connection.features.can_return_rows_from_bulk_insert:
        return SecurityEvent.objects.bulk_create(rows, batch_size=500)
    for row in rows:
        row.save(force_insert=True)
    return rows


def _copy_insert(rows: list[SecurityEvent]) -> list[SecurityEvent]:
    """PostgreSQL: the batch's keys from the sequence in one statement, the rows by COPY.

    Same rows, constraints and transaction as `bulk_create`, at a fraction of its cost: COPY's
    text encoding runs in psycopg's C code, where `bulk_create`'s UNNEST arrays are quoted in
    Python (docs/performance.md). A constraint violation is Django's IntegrityError as usual.
    """
    meta = SecurityEvent._meta
    fields = meta.concrete_fields
    qn = connection.ops.quote_name
    encoders = [
        (lambda value, cls=field.encoder: json.dumps(value, cls=cls))
        if isinstance(field, models.JSONField)
        else None
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(rows)],
        )
        keys = [key for (key,) in cursor.fetchall()]
        statement = "COPY {} ({}) FROM STDIN".format(
            qn(meta.db_table), ", ".join(qn(field.column) for field in fields)
        )
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for key, row in zip(keys, rows, strict=True):
                row.pk = key
                values = [getattr(row, field.attname) for field in fields]
                for index, encode in enumerate(encoders):
                    if encode is not None:
                        values[index] = encode(values[index])
                copy.write_row(values)
    for row in rows:
        row._state.adding = False
        row._state.db = connection.alias
    return rows


def _without_delivered(rows: list[SecurityEvent], agent) -> tuple[list[SecurityEvent], int]:
    record_ids = [row.agent_record_id for row in rows if row.agent_record_id is not None]
    if not record_ids:
        return rows, 0
    seen = set(
        SecurityEvent.objects.filter(agent=agent, agent_record_id__in=record_ids).values_list(
            "agent_record_id", flat=True
        )
    )
    kept: list[SecurityEvent] = []
    for row in rows:
        if row.agent_record_id is not None:
            if row.agent_record_id in seen:
                continue
            seen.add(row.agent_record_id)  # duplicates inside one batch count once
        kept.append(row)
    return kept, len(rows) - len(kept)


# Advisory lock namespace of "an agent's batch is being stored" (pg_advisory_xact_lock(int, int)).
AGENT_BATCH_LOCK = 0x5E1E


def _without_delivered_locked(
    rows: list[SecurityEvent], agent, result: IngestResult | None
) -> list[SecurityEvent]:
    """PostgreSQL: an agent's batches are stored one at a time, each checking under the lock
    which records are already stored, so that a retry racing its original stores nothing twice.

    The events table is partitioned by day of `received_at` there (events/partitions.py), and a
    unique index on (agent, agent record id) would have to include `received_at`: it would not
    see a retry that crosses midnight. This transaction-scoped lock per agent (by hash of its id;
    a collision only makes two agents take turns) does: the second of two concurrent batches
    waits for the first to commit, then its check (a new snapshot, READ COMMITTED) sees the
    first's rows, in whichever partition.
    """
    if not any(row.agent_record_id is not None for row in rows):
        return rows
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [AGENT_BATCH_LOCK, str(agent.pk)]
        )
    rows, duplicates = _without_delivered(rows, agent)
    if result is not None:
        result.duplicates += duplicates
    return rows


def after_events_stored(events: list[SecurityEvent], *, only=None) -> None:
    """Run the registered post-commit steps over committed events now, without the outbox
    (benchmarks of the stages; ingestion goes through `events.pipeline.enqueue`)."""
    pipeline.run_now(events, only=only)


def broadcast_step(events: list[SecurityEvent], context: pipeline.StepContext) -> None:
    """Pipeline step: one `event` message per stored event to `events` and `dashboard`.

    Published at once and idempotently (chunks recorded under the outbox key), raising if Redis
    is unreachable so that the outbox keeps the work for the relay.
    """
    get_connection_manager().send_events_now(events, key=context.key)


# --- AI analysis results -------------------------------------------------------------------------
AI_ACTOR = "ai-analyzer"


def apply_analysis(
    event: SecurityEvent, analysis, *, provider: str, claimed_at=None, now=None
) -> bool:
    """Store an AI verdict on `event`; notify and raise an alert above the thresholds.

    1. Store the ai_* fields only while the caller still holds its claim (status `processing`
       with the same `ai_claimed_at`), so a slow worker whose claim was taken back and given to
       another cannot store a second verdict. Without a claim, any event not yet `done` may be set.
    2. Score > AI_ALERT_THRESHOLD: one alert (source `ai`, dedup key `ai:event:<id>`), created only
       if no alert ever had that key.
    3. Score > AI_NOTIFY_THRESHOLD: one `notification` (severity `high`; `critical` when the score
       is also > AI_ALERT_THRESHOLD, with the new alert's `alert_id`) to `notifications` and
       `dashboard`, after commit. Returns False if nothing was stored (claim lost).
    """
    from django.conf import settings

    from realtime.messages import notification_data

    now = now or timezone.now()
    rows = SecurityEvent.objects.filter(pk=event.pk)
    if claimed_at is not None:
        rows = rows.filter(ai_status=AnalysisStatus.PROCESSING, ai_claimed_at=claimed_at)
    else:
        rows = rows.exclude(ai_status=AnalysisStatus.DONE)
    with transaction.atomic():
        stored = rows.update(
            ai_status=AnalysisStatus.DONE,
            ai_score=analysis.score,
            ai_category=analysis.category,
            ai_description=analysis.description,
            ai_provider=provider,
            ai_analyzed_at=now,
            ai_claimed_at=None,
            ai_error="",
        )
        if not stored:
            return False
        event.refresh_from_db()
        score = event.ai_score or 0
        if score > settings.AI_NOTIFY_THRESHOLD:
            rollups.count_ai_attack(event)  # the dashboard's "AI attacks", once per event
        alert = _raise_ai_alert(event) if score > settings.AI_ALERT_THRESHOLD else None
        if score > settings.AI_NOTIFY_THRESHOLD:
            severity = "critical" if score > settings.AI_ALERT_THRESHOLD else "high"
            data = notification_data(event)
            if alert is not None:
                data["alert_id"] = alert.alert_id  # lets a client open the alert it raised
            get_connection_manager().broadcast_notification(data, severity=severity)
    return True


def ai_alert_key(event: SecurityEvent) -> str:
    return f"ai:event:{event.pk}"


def _raise_ai_alert(event: SecurityEvent):
    """The alert created for this event now, or None if it had one before (never a second)."""
    from alerts.models import Alert, AlertSource
    from alerts.services import create_alert
    from siem.choices import Severity

    key = ai_alert_key(event)
    # Any alert with this key, open or closed: an analyst who resolved it is not paged again.
    if Alert.objects.filter(dedup_key=key).exists():
        return None
    score = event.ai_score or 0
    category = event.ai_category or "unknown"
    try:
        with transaction.atomic():
            return create_alert(
                # The offline analyzer is rules, not AI: its verdicts say so (issue 13, item 8).
                title=(
                    f"{'Rules' if event.ai_provider == 'builtin' else 'AI'}: "
                    f"{category.replace('_', ' ')} on {event.computer}"
                )[:255],
                severity=max(event.severity, Severity.CRITICAL if score >= 95 else Severity.HIGH),
                category=category,
                hostname=event.computer,
                description=(
                    f"{event.ai_description}\n\nAI score {score}/100 ({event.ai_provider}) for "
                    f"event #{event.pk} (code {event.event_code})."
                ).strip(),
                events=[event],
                source=AlertSource.AI,
                dedup_key=key,
                seen_at=event.timestamp,
                actor=AI_ACTOR,
            )
    except IntegrityError:
        # The partial unique index saw a concurrent open alert with this key: it exists once.
        logger.info("AI alert for event %s already raised concurrently", event.pk)
        return None


def record_analysis_failure(
    event_ids, reason: str, *, claimed_at, max_attempts: int, now=None
) -> tuple[int, int]:
    """Count a failed attempt on claimed events: back to `pending`, or `failed` at the limit.

    The reason is kept in `ai_error` either way; `ai_claimed_at` stays as the time of the attempt,
    from which the retry backoff is measured. Returns (requeued, failed).
    """
    from django.db.models import F

    now = now or timezone.now()
    reason = reason[:2000]
    with transaction.atomic():
        rows = SecurityEvent.objects.filter(
            pk__in=list(event_ids), ai_status=AnalysisStatus.PROCESSING, ai_claimed_at=claimed_at
        )
        failed = rows.filter(ai_attempts__gte=max_attempts - 1).update(
            ai_status=AnalysisStatus.FAILED,
            ai_attempts=F("ai_attempts") + 1,
            ai_error=reason,
        )
        requeued = rows.update(
            ai_status=AnalysisStatus.PENDING,
            ai_attempts=F("ai_attempts") + 1,
            ai_error=reason,
            ai_claimed_at=now,
        )
    return requeued, failed


# ai_error of attempts that failed because the provider itself failed (down, timeout, HTTP
# error, no JSON, misconfigured), as opposed to one event missing from a good answer.
AI_OUTAGE_PREFIX = "provider unavailable: "


def requeue_failed_analyses(event_ids=None, *, outage_only: bool = False) -> int:
    """Give failed events a fresh set of attempts (`analyze_events --retry-failed`, or the
    analyzer itself once the provider answers again, for events failed by an outage)."""
    rows = SecurityEvent.objects.filter(ai_status=AnalysisStatus.FAILED)
    if event_ids is not None:
        rows = rows.filter(pk__in=list(event_ids))
    if outage_only:
        rows = rows.filter(ai_error__startswith=AI_OUTAGE_PREFIX)
    return rows.update(
        ai_status=AnalysisStatus.PENDING, ai_attempts=0, ai_claimed_at=None, ai_analyzed_at=None
    )


# --- saved searches (hunting) --------------------------------------------------------------------
def create_saved_search(*, name: str, q: str, shared: bool = False, actor):
    """Keep a hunting query under a name for `actor` (any role may)."""
    from events.models import SavedSearch

    with transaction.atomic():
        return SavedSearch.objects.create(owner=actor, name=name, q=q, shared=shared)


def delete_saved_search(search, *, actor) -> None:
    """Remove a saved search (the view checks that `actor` owns it or is an admin)."""
    with transaction.atomic():
        search.delete()
    logger.info("Saved search %r deleted by %s", search.name, getattr(actor, "username", actor))
