from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Security events"

    def ready(self) -> None:
        from events import pipeline
        from events.services import broadcast_step

        # First: live clients see a stored event before any alert it raises.
        pipeline.register(pipeline.Step("events.broadcast", broadcast_step))
