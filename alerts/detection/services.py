"""Writes to the detection configuration: built-in rule overrides and Sigma rules' switches.

The admin (and anything else) changes rules only here: each change is one transaction with an
audit-log entry (accounts/audit.py: who, which rule, from what to what), and this process's
engine re-reads its configuration at once (other workers within DETECTION_CONFIG_TTL_SEC).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from accounts import audit
from alerts.models import DetectionRule, SigmaRule

DETECTION_RULE_FIELDS = ("enabled", "threshold", "window_seconds", "severity")


def _invalidate() -> None:
    """This process's engine re-reads its configuration at its next use (called once the
    change is written; the engine reads through this process's own connection)."""
    from alerts.detection.engine import invalidate_config

    invalidate_config()


def update_detection_rule(rule: DetectionRule, *, actor, **changes) -> DetectionRule:
    """Change a built-in rule's overrides; `rule.enabled` flips are `rule.enabled/disabled`."""
    unknown = set(changes) - set(DETECTION_RULE_FIELDS)
    if unknown:
        raise ValueError(f"not a detection rule setting: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        rule = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        before = {name: getattr(rule, name) for name in changes}
        diff = {
            name: {"from": before[name], "to": value}
            for name, value in changes.items()
            if before[name] != value
        }
        if not diff:
            return rule
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.save()
        action = "rule.changed"
        if set(diff) == {"enabled"}:
            action = "rule.enabled" if rule.enabled else "rule.disabled"
        audit.record(action, actor=actor, target=rule, details={"rule": rule.rule_id, **diff})
    _invalidate()
    return rule


def set_sigma_rules_enabled(rules: Iterable[SigmaRule], *, enabled: bool, actor) -> int:
    """Enable or disable Sigma rules; one audit entry per rule that actually changed."""
    with transaction.atomic():
        ids = [rule.pk for rule in rules]
        changing = list(
            SigmaRule.objects.select_for_update().filter(pk__in=ids).exclude(enabled=enabled)
        )
        SigmaRule.objects.filter(pk__in=[rule.pk for rule in changing]).update(enabled=enabled)
        for rule in changing:
            audit.record(
                "rule.enabled" if enabled else "rule.disabled",
                actor=actor,
                target=rule,
                details={"rule": rule.rule_id, "title": rule.title, "path": rule.path},
            )
    if changing:
        _invalidate()
    return len(changing)


def reload_sigma_rules(directory: str, *, actor):
    """Re-read `directory` into the SigmaRule table (enabled flags kept); returns the ruleset."""
    from alerts.detection.catalog import sync_sigma_rules
    from alerts.detection.sigma import RuleFilter, load_rules

    ruleset = load_rules(directory, RuleFilter.from_settings())
    with transaction.atomic():
        sync_sigma_rules(ruleset)
        audit.record(
            "rules.reloaded",
            actor=actor,
            target_type="alerts.sigmarule",
            details={
                "directory": directory,
                "loaded": len(ruleset.rules) + len(ruleset.correlations),
                "refused": sum(1 for entry in ruleset.entries if entry.error),
            },
        )
    _invalidate()
    return ruleset
