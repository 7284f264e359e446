"""The Celery app: JSON only, Redis broker from REDIS_URL, beat schedule from settings."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siem.settings")

app = Celery("siem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(**_kwargs) -> None:
    """Log through settings.LOGGING (token redaction included) instead of Celery's own setup.

    Celery's default also redirects stdout/stderr into its loggers; with Django's console
    handler writing to stderr, that loop swallowed every worker and beat log line.
    """
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


def _every(seconds: int, task: str) -> dict:
    # A run not started within one interval is dropped: the next one does the same work, so a
    # worker that was down does not replay a pile of stale runs when it comes back.
    return {"task": task, "schedule": float(seconds), "options": {"expires": float(seconds)}}


@app.on_after_finalize.connect
def _install_beat_schedule(sender: Celery, **_kwargs) -> None:
    """Build the beat schedule from settings so that intervals follow the environment."""
    from django.conf import settings

    sender.conf.beat_schedule = {
        "ai-analyzer": _every(
            settings.AI_PROCESS_INTERVAL_SEC, "events.tasks.analyze_pending_events"
        ),
        "dashboard-updater": _every(
            settings.DASHBOARD_UPDATE_INTERVAL_SEC, "realtime.tasks.broadcast_dashboard_statistics"
        ),
        "events-pipeline-relay": _every(
            settings.PIPELINE_RELAY_INTERVAL_SEC, "events.tasks.drain_pipeline"
        ),
        "agent-watchdog": _every(
            settings.AGENT_WATCHDOG_INTERVAL_SEC, "agents.tasks.mark_silent_agents_offline"
        ),
        "retention": _every(24 * 3600, "siem.tasks.purge_expired_data"),
        "integrations-sweep": _every(60, "integrations.tasks.sweep_unrouted"),
        # PostgreSQL: day partitions of the events table, days ahead (a no-op elsewhere).
        "event-partitions": _every(6 * 3600, "events.tasks.create_event_partitions"),
    }
