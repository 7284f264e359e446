"""Writes of security events. Events are stored first; broadcasting and detection follow commit."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from events.models import AnalysisStatus, SecurityEvent
from realtime.manager import get_connection_manager

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
    return SecurityEvent(
        agent=agent, received_at=received_at, ai_status=AnalysisStatus.PENDING, **values
    )


def create_events(items: Iterable[Mapping[str, Any]], *, agent=None, actor=None) -> IngestResult:
    """Store a batch of already-validated events, all or nothing.

    1. Build the rows (one `received_at` for the batch; `computer` defaults to the agent's host).
    2. Drop records the agent already delivered (same agent record id): a retried batch is a no-op.
    3. Insert in one transaction (bulk where the database returns keys, row by row on SQL Server).
    4. After commit: broadcast each event and hand the batch to the post-ingestion pipeline.
    """
    received_at = timezone.now()
    rows = [_build(item, agent=agent, received_at=received_at) for item in items]
    result = IngestResult()
    if agent is not None:
        rows, result.duplicates = _without_delivered(rows, agent)
    if not rows:
        return result
    try:
        result.created = _store(rows)
    except IntegrityError:
        if agent is None:
            raise
        # A concurrent retry of the same batch won the race: store what is still missing.
        rows, duplicates = _without_delivered(rows, agent)
        result.duplicates += duplicates
        result.created = _store(rows)
    return result


def create_event(item: Mapping[str, Any], *, agent=None, actor=None) -> SecurityEvent:
    result = create_events([item], agent=agent, actor=actor)
    if result.created:
        return result.created[0]
    return SecurityEvent.objects.get(agent=agent, agent_record_id=item.get("agent_record_id"))


def _store(rows: list[SecurityEvent]) -> list[SecurityEvent]:
    with transaction.atomic():
        if connection.features.can_return_rows_from_bulk_insert:
            created = SecurityEvent.objects.bulk_create(rows, batch_size=500)
        else:
            for row in rows:
                row.save(force_insert=True)
            created = rows
        get_connection_manager().broadcast_events(created)
        transaction.on_commit(lambda: after_events_stored(created))
    return created


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


def after_events_stored(events: list[SecurityEvent]) -> None:
    """Post-ingestion pipeline, run once the events are committed (detection hooks in here)."""
    logger.debug("%d event(s) stored", len(events))
