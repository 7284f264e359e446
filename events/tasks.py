"""Celery tasks of the events app: the AI analyzer run by beat every AI_PROCESS_INTERVAL_SEC."""

from __future__ import annotations

from celery import shared_task

from events.analysis import run_batch


@shared_task(name="events.tasks.analyze_pending_events", ignore_result=True)
def analyze_pending_events() -> dict:
    """Analyze up to AI_BATCH_SIZE pending events; safe to run twice and on many workers."""
    return run_batch().as_dict()
