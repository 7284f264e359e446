"""Celery task of the project as a whole: the daily retention purge (siem/retention.py)."""

from __future__ import annotations

from celery import shared_task

from siem.retention import purge_expired


@shared_task(name="siem.tasks.purge_expired_data", ignore_result=True)
def purge_expired_data() -> dict:
    """Delete what is past EVENTS_RETENTION_DAYS / ALERTS_RETENTION_DAYS, batch by batch; safe
    to run twice or on two workers at once (each batch deletes what is still there)."""
    return purge_expired().as_dict()
