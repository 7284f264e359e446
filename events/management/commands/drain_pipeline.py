"""`manage.py drain_pipeline [--loop]`: finish post-commit work left by crashed or failed runs.

The same relay as the Celery beat task `events.tasks.drain_pipeline` (`events.pipeline.drain`),
for installations without Celery, scripts and the fault runs (docs/fault-runs.md). Without
`--loop`, one pass over every due outbox row, then it prints what is left.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from events import pipeline


class Command(BaseCommand):
    help = "Run the events pipeline's relay: broadcast and detect what a crash or outage left."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop", action="store_true", help="keep running, one pass per relay interval"
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="take over every row now, leased or not (only when no server process is running)",
        )

    def handle(self, *args, loop: bool = False, **options) -> None:
        if options["all"]:
            from django.utils import timezone

            from events.models import PipelineItem

            PipelineItem.objects.update(claimed_until=timezone.now())
        while True:
            done = 0
            while True:
                batch = pipeline.drain()
                done += batch
                if not batch:
                    break
            self.stdout.write(f"completed {done}, pending {pipeline.pending_count()}")
            if not loop:
                return
            time.sleep(settings.PIPELINE_RELAY_INTERVAL_SEC)
