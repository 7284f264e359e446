"""Keep the admin's rule tables in step with the code and with SIGMA_RULES_DIR."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from alerts.detection.builtin import BUILTIN_RULES
from alerts.detection.sigma import SigmaRuleSet

GONE = "no longer found in SIGMA_RULES_DIR"


def ensure_builtin_rows() -> None:
    from alerts.models import DetectionRule

    existing = set(DetectionRule.objects.values_list("rule_id", flat=True))
    DetectionRule.objects.bulk_create(
        [DetectionRule(rule_id=r.rule_id) for r in BUILTIN_RULES if r.rule_id not in existing]
    )


def sync_sigma_rules(ruleset: SigmaRuleSet) -> None:
    """Record every rule found (loaded or not, with the reason); the enabled flags are kept."""
    from alerts.models import SigmaRule

    now = timezone.now()
    with transaction.atomic():
        rows = {row.rule_id: row for row in SigmaRule.objects.select_for_update()}
        for entry in ruleset.entries:
            row = rows.get(entry.rule_id) or SigmaRule(rule_id=entry.rule_id)
            row.title = entry.title[:255]
            row.path = entry.path[:500]
            row.kind = entry.kind
            row.level = entry.level
            row.error = entry.error
            row.loaded_at = now
            row.save()
        found = {entry.rule_id for entry in ruleset.entries}
        for rule_id, row in rows.items():
            if rule_id not in found and row.error != GONE:
                row.error = GONE
                row.save(update_fields=["error"])
