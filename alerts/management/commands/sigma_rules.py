"""`manage.py sigma_rules`: the Sigma rules of SIGMA_RULES_DIR, loaded or refused and why."""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alerts.detection.catalog import sync_sigma_rules
from alerts.detection.engine import invalidate_config
from alerts.detection.sigma import SKIPPED, RuleFilter, load_rules, refusal_reason


class Command(BaseCommand):
    help = (
        "List the Sigma rules found in SIGMA_RULES_DIR (or --dir): loaded, disabled in the "
        "admin, or refused with the reason. Records them in the database for the admin."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dir", default=None, help="Rules directory (default: SIGMA_RULES_DIR)"
        )
        parser.add_argument("--errors", action="store_true", help="Only the rules that failed")
        parser.add_argument(
            "--no-save", action="store_true", help="Do not record the rules in the database"
        )

    def handle(self, *args, dir=None, errors=False, no_save=False, **options) -> None:
        from alerts.models import SigmaRule

        directory = dir or settings.SIGMA_RULES_DIR
        if not directory:
            raise CommandError("No rules directory: set SIGMA_RULES_DIR or pass --dir")
        ruleset = load_rules(directory, RuleFilter.from_settings())
        if not no_save:
            sync_sigma_rules(ruleset)
            invalidate_config()
        disabled = set(SigmaRule.objects.filter(enabled=False).values_list("rule_id", flat=True))
        refused = [entry for entry in ruleset.entries if entry.error]
        for entry in ruleset.entries:
            if errors and not entry.error:
                continue
            status = "ERROR" if entry.error else "disabled" if entry.rule_id in disabled else "ok"
            self.stdout.write(
                f"{status:8} {entry.kind:11} {entry.level or '-':13} {entry.title}  [{entry.path}]"
            )
            if entry.error:
                self.stdout.write(f"         reason: {entry.error}")
        loaded = len(ruleset.rules) + len(ruleset.correlations)
        skipped = [entry for entry in refused if entry.error.startswith(SKIPPED)]
        self.stdout.write(
            f"{loaded} loaded ({len(ruleset.correlations)} correlation), "
            f"{len(refused) - len(skipped)} refused, {len(skipped)} skipped by setting, "
            f"{len(disabled & {e.rule_id for e in ruleset.entries})} disabled, from {directory}"
        )
        for reason, count in Counter(refusal_reason(e.error) for e in refused).most_common():
            self.stdout.write(f"{count:6}  {reason}")
