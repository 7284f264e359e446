"""Celery task of the agents app: the watchdog run by beat every AGENT_WATCHDOG_INTERVAL_SEC."""

from __future__ import annotations

from celery import shared_task

from agents import services


@shared_task(name="agents.tasks.mark_silent_agents_offline", ignore_result=True)
def mark_silent_agents_offline() -> int:
    """Agents silent for AGENT_OFFLINE_AFTER_SEC go offline (each broadcast once)."""
    return services.mark_silent_agents_offline()
