"""The Celery app: JSON only, Redis broker from REDIS_URL, beat schedule from settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siem.settings")

app = Celery("siem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _install_beat_schedule(sender: Celery, **_kwargs) -> None:
    """Build the beat schedule from settings so that intervals follow the environment."""
    from django.conf import settings

    sender.conf.beat_schedule = {
        "ai-analyzer": {
            "task": "events.tasks.analyze_pending_events",
            "schedule": float(settings.AI_PROCESS_INTERVAL_SEC),
        },
        "dashboard-updater": {
            "task": "realtime.tasks.broadcast_dashboard_statistics",
            "schedule": float(settings.DASHBOARD_UPDATE_INTERVAL_SEC),
        },
        "agent-watchdog": {
            "task": "agents.tasks.mark_silent_agents_offline",
            "schedule": float(settings.AGENT_WATCHDOG_INTERVAL_SEC),
        },
    }
