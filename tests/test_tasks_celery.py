"""The Celery app: JSON only, Redis broker, the beat schedule built from settings."""

from __future__ import annotations

from siem.celery import app


def test_the_app_speaks_json_only_over_the_redis_broker(settings):
    app.loader.import_default_modules()
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.broker_url == settings.REDIS_URL


def test_beat_runs_the_background_tasks_at_the_configured_intervals(settings):
    app.finalize()
    schedule = app.conf.beat_schedule
    assert {n: (e["task"], e["schedule"]) for n, e in schedule.items()} == {
        "ai-analyzer": (
            "events.tasks.analyze_pending_events",
            float(settings.AI_PROCESS_INTERVAL_SEC),
        ),
        "dashboard-updater": (
            "realtime.tasks.broadcast_dashboard_statistics",
            float(settings.DASHBOARD_UPDATE_INTERVAL_SEC),
        ),
        "agent-watchdog": (
            "agents.tasks.mark_silent_agents_offline",
            float(settings.AGENT_WATCHDOG_INTERVAL_SEC),
        ),
        "retention": ("siem.tasks.purge_expired_data", 86400.0),
        "integrations-sweep": ("integrations.tasks.sweep_unrouted", 60.0),
        "event-partitions": ("events.tasks.create_event_partitions", 21600.0),
        "events-pipeline-relay": (
            "events.tasks.drain_pipeline",
            float(settings.PIPELINE_RELAY_INTERVAL_SEC),
        ),
    }
    app.loader.import_default_modules()
    for entry in schedule.values():
        assert entry["task"] in app.tasks
    # A run that waited a whole interval in the queue is dropped, not replayed.
    assert all(e["options"]["expires"] == e["schedule"] for e in schedule.values())
