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
    # ATT&CK techniques of the loaded rules (the rules API and the coverage view read them).
    techniques = {
        rule.rule_id: list(rule.techniques) for rule in (*ruleset.rules, *ruleset.correlations)
    }
    with transaction.atomic():
        rows = {row.rule_id: row for row in SigmaRule.objects.select_for_update()}
        done: set[str] = set()
        for entry in ruleset.entries:
            rule_id = entry.rule_id[:255]  # "file:<path>" of a deep tree may be longer
            row = rows.get(rule_id) or rows.setdefault(rule_id, SigmaRule(rule_id=rule_id))
            if rule_id in done:  # a file with several errors: keep them all
                row.error = "; ".join(filter(None, (row.error, entry.error)))[:5000]
            else:
                row.title = entry.title[:255]
                row.path = entry.path[:500]
                row.kind = entry.kind
                row.level = entry.level
                row.techniques = techniques.get(entry.rule_id, [])
                row.error = entry.error
                row.loaded_at = now
            row.save()
            done.add(rule_id)
        found = {entry.rule_id[:255] for entry in ruleset.entries}
        for rule_id, row in rows.items():
            if rule_id not in found and row.error != GONE:
                row.error = GONE
                row.save(update_fields=["error"])
