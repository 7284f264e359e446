"""Celery tasks of the events app: the AI analyzer run by beat every AI_PROCESS_INTERVAL_SEC,
the post-commit pipeline's relay every PIPELINE_RELAY_INTERVAL_SEC, and (PostgreSQL) the day
partitions of the events table created EVENTS_PARTITION_DAYS_AHEAD ahead every 6 hours."""

from __future__ import annotations

from celery import shared_task

from events.analysis import run_batch


@shared_task(name="events.tasks.analyze_pending_events", ignore_result=True)
def analyze_pending_events() -> dict:
    """Analyze up to AI_BATCH_SIZE pending events; safe to run twice and on many workers."""
    return run_batch().as_dict()


@shared_task(name="events.tasks.drain_pipeline", ignore_result=True)
def drain_pipeline() -> int:
    """Finish post-commit work left by crashed or failed runs (`events.pipeline.drain`).

    Safe to run twice and on many workers: each outbox row is claimed with a conditional
    UPDATE. Bounded to one relay interval's worth of time, so runs do not pile up.
    """
    from django.conf import settings

    from events import pipeline

    return pipeline.drain(budget_sec=max(settings.PIPELINE_RELAY_INTERVAL_SEC * 5, 10))


@shared_task(name="events.tasks.create_event_partitions", ignore_result=True)
def create_event_partitions() -> list[str]:
    """PostgreSQL: create the missing day partitions up to EVENTS_PARTITION_DAYS_AHEAD days
    ahead (events/partitions.py); a no-op elsewhere. Safe to run twice at once."""
    from events.partitions import ensure_partitions

    return ensure_partitions()
