"""Rule exceptions: events a rule must not alert on.

An exception is a set of field conditions (`{"SubjectUserName": "svc_backup"}`) that must all
hold; each condition is one value or a list of values (any of them), compared exactly and
case-insensitively with the field as the rules read it (`FieldView`: field names are
case-insensitive, values lower-cased and stripped). `host` is the event's computer. A rule's
exceptions are alternatives. The engine asks `excepted(rule_id, view)` only after the rule
matched and only for rules that have exceptions: the other rules pay one dict lookup.
"""

from __future__ import annotations

from collections import defaultdict

from alerts.detection.fields import FieldView

# Names an exception may use that are not fields of the record itself.
ALIASES = {"host": "computer", "hostname": "computer"}
MAX_CONDITIONS = 20
MAX_VALUES = 100

Compiled = tuple[tuple[tuple[str, frozenset[str]], ...], ...]


def normalize_conditions(conditions) -> dict[str, list[str]]:
    """Validate an exception's conditions; ValueError names what is wrong."""
    if not isinstance(conditions, dict) or not conditions:
        raise ValueError('an object of field conditions, e.g. {"SubjectUserName": "svc_backup"}')
    if len(conditions) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} conditions")
    result: dict[str, list[str]] = {}
    for name, value in conditions.items():
        field = str(name).strip()
        if not field or len(field) > 200 or any(ch.isspace() for ch in field):
            raise ValueError(f"{name!r} is not a field name")
        values = value if isinstance(value, list) else [value]
        if not values or len(values) > MAX_VALUES:
            raise ValueError(f"{field}: one value or a list of 1 to {MAX_VALUES} values")
        texts = []
        for item in values:
            if isinstance(item, bool) or not isinstance(item, str | int):
                raise ValueError(f"{field}: values are strings or integers")
            text = str(item).strip()
            if not text or len(text) > 1000:
                raise ValueError(f"{field}: values are 1 to 1000 characters")
            texts.append(text)
        result[field] = texts
    return result


def compile_exceptions(rows) -> dict[str, Compiled]:
    """rule id → its exceptions as ((lower-case field, {lower-case values}), ...) tuples."""
    by_rule: dict[str, list] = defaultdict(list)
    for rule_id, conditions in rows:
        compiled = tuple(
            (
                ALIASES.get(name.lower(), name.lower()),
                frozenset(
                    str(v).strip().lower() for v in (vals if isinstance(vals, list) else [vals])
                ),
            )
            for name, vals in (conditions or {}).items()
        )
        if compiled:
            by_rule[rule_id].append(compiled)
    return {rule_id: tuple(items) for rule_id, items in by_rule.items()}


def matches(exceptions: Compiled, view: FieldView) -> bool:
    """Whether one of the exceptions holds for this event."""
    for conditions in exceptions:
        for name, values in conditions:
            found = view.get(name)
            if not found or values.isdisjoint(found):
                break
        else:
            return True
    return False
