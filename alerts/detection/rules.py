"""The rules as operators manage them: built-in and Sigma in one list, with their settings,
exceptions, hits and ATT&CK techniques (the rules API, the coverage view and the rules page).

A few thousand rules at most (the whole SigmaHQ Windows set is 2,407): every read is a fixed
handful of queries (rule rows, exception counts, one grouped query over the hits) and the
filtering happens here, the same way for both kinds of rule.
"""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count

from alerts import attack
from alerts.detection.builtin import BUILTIN_BY_ID, BUILTIN_RULES
from alerts.detection.catalog import ensure_builtin_rows
from alerts.detection.hits import EMPTY_HITS, hits_by_rule
from alerts.detection.sigma import LEVEL_SEVERITY
from alerts.models import DetectionRule, RuleException, SigmaRule

SEVERITY_LEVEL = {severity: level for level, severity in LEVEL_SEVERITY.items()}
SIGMA_FIELDS = ("rule_id", "title", "path", "kind", "level", "level_override", "techniques")
HIT_ORDERINGS = ("alerts_24h", "alerts_7d", "events_24h", "events_7d")
ORDERINGS = ("id", "name", "level", *HIT_ORDERINGS)
OTHER_TACTIC = "Other"
COVERAGE_RULE_FIELDS = ("id", "name", "source", "enabled")


def _builtin(rule, row: DetectionRule | None) -> dict:
    override = row.severity if row else None
    severity = override or rule.severity
    return {
        "id": rule.rule_id,
        "name": rule.title,
        "source": "builtin",
        "kind": "correlation" if rule.window else "rule",
        "enabled": row.enabled if row else True,
        "loaded": True,
        "error": "",
        "level": SEVERITY_LEVEL[severity],
        "severity": severity,
        "default_level": SEVERITY_LEVEL[rule.severity],
        "level_override": SEVERITY_LEVEL[override] if override else "",
        "threshold": (row.threshold if row else None) or rule.default_threshold(),
        "window_seconds": (row.window_seconds if row else None) or rule.default_window(),
        "path": "",
        "technique_ids": list(rule.techniques),
    }


def _sigma(row: dict) -> dict:
    level = row["level_override"] or row["level"]
    return {
        "id": row["rule_id"],
        "name": row["title"] or row["rule_id"],
        "source": "sigma",
        "kind": row["kind"],
        "enabled": row["enabled"],
        "loaded": not row["error"],
        "error": row["error"],
        "level": level,
        "severity": LEVEL_SEVERITY.get(level),
        "default_level": row["level"],
        "level_override": row["level_override"],
        "threshold": None,
        "window_seconds": None,
        "path": row["path"],
        "technique_ids": list(row["techniques"] or []),
    }


def all_rules(*, with_hits: bool = True) -> list[dict]:
    """Every rule: built-in first, then Sigma by path; each with its exception count and hits."""
    ensure_builtin_rows()
    overrides = {row.rule_id: row for row in DetectionRule.objects.all()}
    rules = [_builtin(rule, overrides.get(rule.rule_id)) for rule in BUILTIN_RULES]
    sigma = SigmaRule.objects.order_by("path", "title").values(*SIGMA_FIELDS, "enabled", "error")
    rules.extend(_sigma(row) for row in sigma)
    counts = dict(
        RuleException.objects.order_by()
        .values("rule_id")
        .annotate(n=Count("pk"))
        .values_list("rule_id", "n")
    )
    for rule in rules:
        rule["exception_count"] = counts.get(rule["id"], 0)
        rule["techniques"] = [attack.describe(t) for t in rule["technique_ids"]]
    return attach_hits(rules) if with_hits else rules


def attach_hits(rules: list[dict], *, only_these: bool = False) -> list[dict]:
    """Each rule's `hits`; `only_these` reads the hits of these rules alone (a page of them)."""
    hits = hits_by_rule([rule["id"] for rule in rules] if only_these else None)
    for rule in rules:
        rule["hits"] = hits.get(rule["id"], EMPTY_HITS)
    return rules


def one_rule(rule_id: str) -> dict | None:
    """One rule as the list has it, or None."""
    builtin = BUILTIN_BY_ID.get(rule_id)
    if builtin is not None:
        ensure_builtin_rows()
        rule = _builtin(builtin, DetectionRule.objects.filter(rule_id=rule_id).first())
    else:
        row = SigmaRule.objects.filter(rule_id=rule_id).values(*SIGMA_FIELDS, "enabled", "error")
        if not row:
            return None
        rule = _sigma(row[0])
    rule["exception_count"] = RuleException.objects.filter(rule_id=rule_id).count()
    rule["techniques"] = [attack.describe(t) for t in rule["technique_ids"]]
    return attach_hits([rule], only_these=True)[0]


def _covers(technique_ids: list[str], wanted: str) -> bool:
    """`T1003` covers T1003 and its sub-techniques; `T1003.001` only itself."""
    return any(t == wanted or t.startswith(wanted + ".") for t in technique_ids)


def filter_rules(rules: list[dict], filters: dict) -> list[dict]:
    """Apply the list's validated filters and ordering (see RuleFilterSerializer)."""
    for name in ("source", "level"):
        if filters.get(name):
            rules = [rule for rule in rules if rule[name] == filters[name]]
    for name in ("enabled", "loaded"):
        if filters.get(name) is not None:
            rules = [rule for rule in rules if rule[name] is filters[name]]
    if filters.get("technique"):
        rules = [rule for rule in rules if _covers(rule["technique_ids"], filters["technique"])]
    if filters.get("q"):
        text = filters["q"].lower()
        rules = [
            rule
            for rule in rules
            if any(text in rule[name].lower() for name in ("id", "name", "path"))
        ]
    ordering = filters.get("ordering") or ""
    name = ordering.lstrip("-")
    if name:
        reverse = ordering.startswith("-")
        if name in ("id", "name"):
            rules = sorted(rules, key=lambda rule: rule[name].lower(), reverse=reverse)
        elif name == "level":
            rules = sorted(rules, key=lambda rule: rule["severity"] or 0, reverse=reverse)
        else:
            rules = sorted(rules, key=lambda rule: rule["hits"][name], reverse=reverse)
    return rules


def coverage(rules: list[dict] | None = None) -> dict:
    """ATT&CK coverage of the loaded rules: per tactic, per technique, the enabled and disabled
    rules (ids and names, to link to them). A rule with several techniques counts for each."""
    rules = rules if rules is not None else all_rules(with_hits=False)
    by_technique: dict[str, list[dict]] = defaultdict(list)
    for rule in rules:
        if not rule["loaded"]:
            continue
        for technique in rule["technique_ids"]:
            by_technique[technique].append(rule)
    tactics: dict[str, list[dict]] = defaultdict(list)
    for technique_id in sorted(by_technique):
        described = attack.describe(technique_id)
        members = by_technique[technique_id]
        tactics[described["tactic"] or OTHER_TACTIC].append(
            {
                "id": technique_id,
                "name": described["name"],
                "enabled": sum(1 for rule in members if rule["enabled"]),
                "disabled": sum(1 for rule in members if not rule["enabled"]),
                "rules": [{name: r[name] for name in COVERAGE_RULE_FIELDS} for r in members],
            }
        )
    ordered = sorted(tactics, key=lambda name: (name == OTHER_TACTIC, TACTIC_ORDER.get(name, 99)))
    techniques = [t for name in ordered for t in tactics[name]]
    return {
        "techniques": len(techniques),
        "covered": sum(1 for t in techniques if t["enabled"]),
        "rules_enabled": sum(1 for rule in rules if rule["loaded"] and rule["enabled"]),
        "rules_without_technique": sum(
            1 for rule in rules if rule["loaded"] and not rule["technique_ids"]
        ),
        "tactics": [
            {
                "tactic": name,
                "techniques": tactics[name],
                "covered": sum(1 for t in tactics[name] if t["enabled"]),
            }
            for name in ordered
        ],
    }


# ATT&CK Enterprise's kill-chain order of tactics (the coverage view's columns).
TACTIC_ORDER = {
    name: index
    for index, name in enumerate(
        (
            "Reconnaissance",
            "Resource Development",
            "Initial Access",
            "Execution",
            "Persistence",
            "Privilege Escalation",
            "Defense Evasion",
            "Credential Access",
            "Discovery",
            "Lateral Movement",
            "Collection",
            "Command and Control",
            "Exfiltration",
            "Impact",
        )
    )
}
