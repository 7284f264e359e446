"""`manage.py check_ai_provider`: one request to the configured AI provider, a readable verdict."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from events.ai import ProviderError, get_provider
from events.models import SecurityEvent

# A textbook attack (Mimikatz dumping credentials): any working model scores it high.
PROBE = {
    "event_id": 1,
    "computer": "PROBE-WS-01",
    "event_code": 4688,
    "severity": 3,
    "source_type": "Windows Security",
    "message": "A new process has been created",
    "raw": {
        "EventID": 4688,
        "SubjectUserName": "probe-user",
        "NewProcessName": "C:\\Users\\Public\\mimikatz.exe",
        "CommandLine": 'mimikatz.exe "privilege::debug" "sekurlsa::logonpasswords" exit',
    },
}


class Command(BaseCommand):
    help = (
        "Send one sample event to the configured AI provider (AI_PROVIDER, AI_BASE_URL, AI_MODEL, "
        "AI_API_KEY) and say whether it works. Nothing is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--provider",
            choices=["builtin", "deepseek", "yandexgpt", "openai"],
            help="check this provider instead of AI_PROVIDER",
        )

    def handle(self, *args, **options):
        try:
            provider = get_provider(options["provider"])
        except ProviderError as exc:
            raise CommandError(f"FAILED: configuration: {exc}") from None
        describe = getattr(provider, "describe", lambda: provider.name)()
        self.stdout.write(f"Checking {describe} …")
        probe = SecurityEvent(**PROBE)
        started = time.monotonic()
        try:
            verdicts = provider.analyze([probe])
        except ProviderError as exc:
            raise CommandError(f"FAILED: {exc}") from None
        elapsed = time.monotonic() - started
        verdict = verdicts.get(probe.event_id)
        if verdict is None:
            raise CommandError(
                f"FAILED: the provider answered in {elapsed:.1f} s but gave no usable verdict "
                "for the sample event (wrong JSON shape?)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: answered in {elapsed:.1f} s — sample attack scored {verdict.score}/100, "
                f"category {verdict.category}: {verdict.description}"
            )
        )
        if verdict.score <= 50:
            self.stdout.write(
                self.style.WARNING(
                    "The provider works, but scored an obvious Mimikatz run low; "
                    "check the model choice."
                )
            )
