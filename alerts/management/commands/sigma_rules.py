"""`manage.py sigma_rules`: the Sigma rules of SIGMA_RULES_DIR, loaded or refused and why."""

from __future__ import annotations

from collections import Counter

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alerts.detection.catalog import sync_sigma_rules
from alerts.detection.engine import invalidate_config
from alerts.detection.sigma import SKIPPED, RuleFilter, load_rules, refusal_reason
from alerts.detection.updates import UpdateError, installed_rules_dir, update_rules


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
            "--update",
            action="store_true",
            help="Download the rule package from SIGMA_RULES_URL (or --url), check it, install it "
            "under SIEM_DATA_DIR/sigma/current; running processes reload it within seconds",
        )
        parser.add_argument("--url", default=None, help="Package URL for --update")
        parser.add_argument(
            "--no-save", action="store_true", help="Do not record the rules in the database"
        )

    def handle(
        self, *args, dir=None, errors=False, no_save=False, update=False, url=None, **options
    ) -> None:
        from alerts.models import SigmaRule

        if update:
            try:
                result = update_rules(url)
            except (UpdateError, httpx.HTTPError, OSError) as exc:
                raise CommandError(f"update failed, installed rules unchanged: {exc}") from exc
            self.stdout.write(
                f"installed {result.loaded} rules ({result.refused} refused) in {result.directory}"
            )
            if settings.SIGMA_RULES_DIR:
                self.stdout.write(
                    "note: SIGMA_RULES_DIR is set and wins; unset it to use the installed rules"
                )
            errors = True  # then list only what was refused
        directory = dir or settings.SIGMA_RULES_DIR or installed_rules_dir()
        if not directory:
            raise CommandError(
                "No rules directory: set SIGMA_RULES_DIR, pass --dir, or run --update"
            )
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
