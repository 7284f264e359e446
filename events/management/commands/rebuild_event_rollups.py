"""`manage.py rebuild_event_rollups`: recompute the dashboard's per-minute event counters."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from events.rollups import rebuild_rollups


class Command(BaseCommand):
    help = (
        "Recompute the per-minute event counters behind the dashboard statistics from the events "
        "(after changing AI_NOTIFY_THRESHOLD or deleting events by hand). Run it while ingestion "
        "is quiet: counts made during the rebuild may be lost."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--hours", type=int, default=25, help="how far back to recompute (default 25)"
        )

    def handle(self, *args, hours: int, **options):
        if hours < 1:
            raise CommandError("--hours must be at least 1")
        now = timezone.now()
        # Up to a day ahead too: events with a timestamp in the future count when it comes.
        minutes = rebuild_rollups(now - timedelta(hours=hours), now + timedelta(days=1))
        self.stdout.write(f"{minutes} minute(s) recomputed over the last {hours} h")
