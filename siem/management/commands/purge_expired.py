"""`manage.py purge_expired`: the daily retention purge, now (same code as the beat task)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from siem.retention import purge_expired


class Command(BaseCommand):
    help = (
        "Delete events older than EVENTS_RETENTION_DAYS (except those open alerts and incidents "
        "need) and closed alerts older than ALERTS_RETENTION_DAYS, in small batches; safe to run "
        "while the server ingests."
    )

    def handle(self, *args, **options):
        result = purge_expired()
        self.stdout.write(
            f"{result.events_deleted} event(s) deleted, {result.events_kept} kept for open "
            f"alerts or incidents, {result.alerts_deleted} closed alert(s) deleted "
            f"(retention {settings.EVENTS_RETENTION_DAYS} / {settings.ALERTS_RETENTION_DAYS} "
            f"days) in {result.seconds:.1f} s"
        )
