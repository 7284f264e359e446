"""Writes to the detection configuration: built-in rule overrides, Sigma rules' switches and
level overrides, and rule exceptions.

The admin (and anything else) changes rules only here: each change is one transaction with an
audit-log entry (accounts/audit.py: who, which rule, from what to what), and this process's
engine re-reads its configuration at once (other workers within DETECTION_CONFIG_TTL_SEC).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import audit
from alerts.detection.builtin import BUILTIN_BY_ID
from alerts.detection.exceptions import normalize_conditions
from alerts.models import DetectionRule, RuleException, SigmaLevel, SigmaRule
from siem.activity import actor_user

DETECTION_RULE_FIELDS = ("enabled", "threshold", "window_seconds", "severity")


def _invalidate() -> None:
    """This process's engine re-reads its configuration at its next use (called once the
    change is written; the engine reads through this process's own connection)."""
    from alerts.detection.engine import invalidate_config

    invalidate_config()


def _apply(row, changes: dict) -> dict:
    """Set and save the changed fields of a locked row; {field: {"from", "to"}} of what changed
    (nothing saved when nothing did)."""
    diff = {
        name: {"from": getattr(row, name), "to": value}
        for name, value in changes.items()
        if getattr(row, name) != value
    }
    if diff:
        for name in diff:
            setattr(row, name, changes[name])
        row.save()
    return diff


def update_detection_rule(rule: DetectionRule, *, actor, **changes) -> DetectionRule:
    """Change a built-in rule's overrides; `rule.enabled` flips are `rule.enabled/disabled`."""
    unknown = set(changes) - set(DETECTION_RULE_FIELDS)
    if unknown:
        raise ValueError(f"not a detection rule setting: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        rule = DetectionRule.objects.select_for_update().get(pk=rule.pk)
        diff = _apply(rule, changes)
        if not diff:
            return rule
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


def set_sigma_rule_level(rule: SigmaRule, *, level: str, actor) -> SigmaRule:
    """Override a Sigma rule's level ('' goes back to the rule's own); audited `rule.changed`."""
    if level and level not in SigmaLevel.values:
        raise ValidationError({"level": f"one of {', '.join(SigmaLevel.values)} or empty"})
    with transaction.atomic():
        rule = SigmaRule.objects.select_for_update().get(pk=rule.pk)
        if rule.level_override == level:
            return rule
        before, rule.level_override = rule.level_override, level
        rule.save(update_fields=["level_override"])
        audit.record(
            "rule.changed",
            actor=actor,
            target=rule,
            details={"rule": rule.rule_id, "level_override": {"from": before, "to": level}},
        )
    _invalidate()
    return rule


# --- exceptions -------------------------------------------------------------------------------
def known_rule(rule_id: str) -> bool:
    return rule_id in BUILTIN_BY_ID or SigmaRule.objects.filter(rule_id=rule_id).exists()


def _conditions(conditions) -> dict[str, list[str]]:
    try:
        return normalize_conditions(conditions)
    except ValueError as exc:
        raise ValidationError({"conditions": str(exc)}) from None


def add_rule_exception(rule_id: str, *, conditions, comment: str = "", actor) -> RuleException:
    """A new exception for a rule; audited `rule.exception_added`."""
    if not known_rule(rule_id):
        raise ValidationError({"rule_id": f"no such rule: {rule_id}"})
    conditions = _conditions(conditions)
    with transaction.atomic():
        exception = RuleException.objects.create(
            rule_id=rule_id,
            conditions=conditions,
            comment=comment,
            created_by=actor if getattr(actor_user(actor), "pk", None) else None,
        )
        audit.record(
            "rule.exception_added",
            actor=actor,
            target=exception,
            details={"rule": rule_id, "conditions": conditions, "comment": comment},
        )
    _invalidate()
    return exception


def update_rule_exception(exception: RuleException, *, actor, **changes) -> RuleException:
    """Change an exception's `conditions` or `comment`; audited `rule.exception_changed`."""
    unknown = set(changes) - {"conditions", "comment"}
    if unknown:
        raise ValidationError({name: "this field cannot be changed" for name in sorted(unknown)})
    if "conditions" in changes:
        changes["conditions"] = _conditions(changes["conditions"])
    with transaction.atomic():
        exception = RuleException.objects.select_for_update().get(pk=exception.pk)
        diff = _apply(exception, changes)
        if not diff:
            return exception
        audit.record(
            "rule.exception_changed",
            actor=actor,
            target=exception,
            details={"rule": exception.rule_id, **diff},
        )
    _invalidate()
    return exception


def delete_rule_exception(exception: RuleException, *, actor) -> None:
    """Remove an exception; audited `rule.exception_removed` (with what it was)."""
    with transaction.atomic():
        audit.record(
            "rule.exception_removed",
            actor=actor,
            target=exception,
            details={
                "rule": exception.rule_id,
                "conditions": exception.conditions,
                "comment": exception.comment,
            },
        )
        exception.delete()
    _invalidate()
