"""Celery task of the realtime app: the dashboard statistics updater."""

from __future__ import annotations

import logging

from celery import shared_task

from realtime.manager import get_connection_manager
from siem.statistics import compute_statistics

logger = logging.getLogger("realtime")


@shared_task(name="realtime.tasks.broadcast_dashboard_statistics", ignore_result=True)
def broadcast_dashboard_statistics() -> bool:
    """Send `statistics` to /ws/dashboard, but only while someone (in any process) watches it.

    Nobody connected: no queries, no message. Returns whether statistics were sent.
    """
    manager = get_connection_manager()
    try:
        watchers = manager.get_channel_count("dashboard")
    except Exception:
        # Presence lives in Redis; if it cannot be read, skip this round rather than guess.
        logger.warning("Dashboard presence unavailable; statistics not sent this round")
        return False
    if watchers <= 0:
        return False
    manager.broadcast_statistics(compute_statistics())
    return True
