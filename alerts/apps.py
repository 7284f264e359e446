from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and detection"

    def ready(self) -> None:
        from alerts.detection import detection_step
        from events import pipeline

        # Transactional: its alerts commit together with the outbox row's deletion, so a
        # batch is counted exactly once however many times a crash makes it run.
        pipeline.register(pipeline.Step("alerts.detection", detection_step, transactional=True))
