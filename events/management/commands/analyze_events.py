"""`manage.py analyze_events`: analyze pending events now, batch after batch, with progress."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.ai import ProviderError, get_provider
from events.analysis import pending_count, run_batch
from events.services import requeue_failed_analyses


class Command(BaseCommand):
    help = (
        "Analyze pending security events now with the configured AI provider (the same code as "
        "the Celery analyzer; safe to run next to workers). Retry backoff is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="first put events whose analysis failed back into the queue",
        )
        parser.add_argument(
            "--limit", type=int, default=0, help="stop after this many events (0: all)"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=0,
            help=f"events per provider request (default AI_BATCH_SIZE={settings.AI_BATCH_SIZE})",
        )
        parser.add_argument(
            "--provider",
            choices=["builtin", "deepseek", "yandexgpt", "openai"],
            help="override AI_PROVIDER for this run",
        )

    def handle(self, *args, **options):
        batch_size = options["batch_size"] or settings.AI_BATCH_SIZE
        if batch_size < 1 or options["limit"] < 0:
            raise CommandError("--batch-size must be at least 1 and --limit not negative")
        try:
            provider = get_provider(options["provider"])
        except ProviderError as exc:
            raise CommandError(f"AI provider not usable: {exc}") from None
        if options["retry_failed"]:
            requeued = requeue_failed_analyses()
            self.stdout.write(f"Requeued {requeued} failed event(s).")
        total = pending_count()
        if options["limit"]:
            total = min(total, options["limit"])
        describe = getattr(provider, "describe", lambda: provider.name)()
        self.stdout.write(f"Analyzing {total} pending event(s) with {describe}.")
        done = analyzed = requeued = failed = batches = 0
        while not options["limit"] or done < options["limit"]:
            size = batch_size
            if options["limit"]:
                size = min(size, options["limit"] - done)
            result = run_batch(provider, limit=size, ignore_backoff=True)
            if not result.claimed:
                break
            batches += 1
            done += result.claimed
            analyzed += result.analyzed
            requeued += result.requeued
            failed += result.failed
            self.stdout.write(
                f"[{done}/{max(total, done)}] batch {batches}: {result.analyzed} analyzed, "
                f"{result.requeued} to retry, {result.failed} failed"
            )
            if result.error:
                # The provider itself is failing: hammering it batch after batch helps nobody.
                self.stderr.write(
                    self.style.ERROR(f"Provider error: {result.error}. Stopping; run again later.")
                )
                break
        style = self.style.SUCCESS if not (requeued or failed) else self.style.WARNING
        self.stdout.write(
            style(
                f"Done: {analyzed} analyzed, {requeued} waiting for a retry, {failed} failed "
                f"in {batches} batch(es)."
            )
        )
        if failed:
            self.stdout.write("Failed events keep the reason in ai_error; use --retry-failed.")
