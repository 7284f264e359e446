"""Sigma rules: parsed by pySigma, compiled into in-process matchers over `FieldView`s.

Why compile instead of running pySigma's SQLite backend on micro-batches: the SQLite route must
copy every batch into a table with one column per field and run one query per rule; the compiled
closures test only the rules whose `EventID` can match and share one normalized field view per
event (numbers in docs/detection.md and docs/performance.md). The SQLite backend stays in the
tests as the reference the matcher is checked against, on the real data.

1. Each YAML file is parsed on its own (`collect_errors`), so one bad file never hides the rest.
2. Correlation rules are resolved against the rules of every file (`name` or `id`).
3. Each rule's post-processed condition tree (pySigma resolves selections, `1 of`, modifiers) is
   compiled into nested closures; anything we cannot evaluate faithfully (placeholders, pipe
   aggregations, value statistics...) becomes a load error with its reason, never a crash.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from alerts.detection.fields import PLACEHOLDERS, FieldView, source_address
from alerts.detection.logsource import Source, UnmappedLogsource, narrow, sources_for
from alerts.detection.prefilter import necessary

logger = logging.getLogger(__name__)

Matcher = Callable[[FieldView], bool]

LEVEL_SEVERITY = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_TACTICS = {
    "reconnaissance",
    "resource_development",
    "initial_access",
    "execution",
    "persistence",
    "privilege_escalation",
    "defense_evasion",
    "credential_access",
    "discovery",
    "lateral_movement",
    "collection",
    "command_and_control",
    "exfiltration",
    "impact",
}
_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")


class Unsupported(Exception):
    """A rule construct this engine does not evaluate; the rule is listed with the reason."""


# --- value matchers -----------------------------------------------------------------------------
_MULTI, _SINGLE = object(), object()


def _pattern(parts, lower: bool) -> Callable[[str], bool]:
    """A SigmaString (plain text and wildcards) as the fastest exact test."""
    shape: list = []
    for part in parts:
        if isinstance(part, str):
            shape.append(part.lower() if lower else part)
        elif part == SpecialChars.WILDCARD_MULTI:
            shape.append(_MULTI)
        elif part == SpecialChars.WILDCARD_SINGLE:
            shape.append(_SINGLE)
        else:
            raise Unsupported("placeholders (%name%) are not supported")
    texts = [p for p in shape if isinstance(p, str)]
    if len(texts) == len(shape):
        plain = "".join(texts)
        return plain.__eq__
    if not texts:
        if _SINGLE not in shape:
            return lambda v: True
    elif len(shape) == 3 and shape[0] is _MULTI and shape[2] is _MULTI and len(texts) == 1:
        text = texts[0]
        return lambda v: text in v
    elif len(shape) == 2 and shape[1] is _MULTI and len(texts) == 1:
        text = texts[0]
        return lambda v: v.startswith(text)
    elif len(shape) == 2 and shape[0] is _MULTI and len(texts) == 1:
        text = texts[0]
        return lambda v: v.endswith(text)
    regex = "".join(".*" if p is _MULTI else "." if p is _SINGLE else re.escape(p) for p in shape)
    compiled = re.compile(regex, re.DOTALL)
    return lambda v: compiled.fullmatch(v) is not None


def _plain(value: SigmaString) -> str:
    """The literal text of a SigmaString without wildcards (to_plain() re-escapes `*`, `\\`)."""
    return "".join(part for part in value.s if isinstance(part, str))


def _on_lower(name: str, test: Callable[[str], bool]) -> Matcher:
    def match(view: FieldView) -> bool:
        values = view.get(name)
        if values is None:
            return False
        for value in values:
            if test(value):
                return True
        return False

    return match


def _on_original(name: str, test: Callable[[str], bool]) -> Matcher:
    def match(view: FieldView) -> bool:
        for value in view.get_original(name):
            if test(value):
                return True
        return False

    return match


def _equals(name: str, text: str) -> Matcher:
    def match(view: FieldView) -> bool:
        values = view.get(name)
        return values is not None and text in values

    return match


def _number(value: str) -> float | None:
    try:
        return float(int(value, 0)) if value.lower().startswith("0x") else float(value)
    except ValueError:
        return None


_COMPARE = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


@lru_cache(maxsize=65536)
def _address(value: str):
    """Parsed address of a field value (cached: sources repeat), or None."""
    try:
        return ipaddress.ip_address(source_address(value))
    except ValueError:
        return None


def _cidr_test(network) -> Callable[[str], bool]:
    def test(value: str) -> bool:
        address = _address(value)
        return address is not None and address.version == network.version and address in network

    return test


def _field_matcher(name: str, value) -> Matcher:  # noqa: C901 - one branch per Sigma type
    if isinstance(value, SigmaExpansion):
        return _any([_field_matcher(name, v) for v in value.values])
    if isinstance(value, SigmaCasedString):
        return _on_original(name, _pattern(value.s, lower=False))
    if isinstance(value, SigmaString):
        if value.contains_placeholder():
            raise Unsupported("placeholders (%name%) are not supported")
        if not value.contains_special():
            return _equals(name, _plain(value).lower())
        return _on_lower(name, _pattern(value.s, lower=True))
    if isinstance(value, SigmaBool):
        return _equals(name, "true" if value.boolean else "false")
    if isinstance(value, SigmaNumber):
        return _equals(name, str(value.number).lower())
    if isinstance(value, SigmaNull):

        def is_null(view: FieldView) -> bool:
            values = view.get(name)
            return values is None or all(v in PLACEHOLDERS for v in values)

        return is_null
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
        regex = re.compile(value.regexp.to_plain(), flags)
        return _on_original(name, lambda v: regex.search(v) is not None)
    if isinstance(value, SigmaCIDRExpression):
        return _on_original(name, _cidr_test(value.network))
    if isinstance(value, SigmaCompareExpression):
        op, bound = _COMPARE[value.op], float(value.number.number)

        def compare(v: str) -> bool:
            number = _number(v)
            return number is not None and op(number, bound)

        return _on_lower(name, compare)
    if isinstance(value, SigmaExists):
        wanted = value.exists
        return lambda view: view.has(name) == wanted
    if isinstance(value, SigmaFieldReference):
        other = value.field.lower()

        def same(view: FieldView) -> bool:
            mine, theirs = view.get(name), view.get(other)
            return bool(mine and theirs and set(mine) & set(theirs))

        return same
    raise Unsupported(f"value type {type(value).__name__} is not supported")


def _keyword(value) -> Matcher:
    """A keyword (no field): matches if any field contains it."""
    if not isinstance(value, SigmaString) or isinstance(value, SigmaCasedString):
        raise Unsupported(f"keyword of type {type(value).__name__} is not supported")
    if not value.contains_special():
        text = _plain(value).lower()
        # One substring test over every value joined (cached per event), not one per field.
        return lambda view: text in view.all_text()
    test = _pattern(value.s, lower=True)

    def match(view: FieldView) -> bool:
        for values in view.all_values():
            for v in values:
                if test(v):
                    return True
        return False

    return match


def _all(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]

    def match(view: FieldView) -> bool:
        for m in matchers:
            if not m(view):
                return False
        return True

    return match


def _any(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]

    def match(view: FieldView) -> bool:
        for m in matchers:
            if m(view):
                return True
        return False

    return match


def _shape(value) -> tuple[str, str] | None:
    """(kind, lower text) of a plain string test: eq, prefix, suffix or contains; None: other."""
    if type(value) is not SigmaString or value.contains_placeholder():
        return None
    parts = value.s
    if not value.contains_special():
        return "eq", _plain(value).lower()
    if len(parts) == 2 and isinstance(parts[0], str) and parts[1] == SpecialChars.WILDCARD_MULTI:
        return "prefix", parts[0].lower()
    if len(parts) == 2 and parts[0] == SpecialChars.WILDCARD_MULTI and isinstance(parts[1], str):
        return "suffix", parts[1].lower()
    if (
        len(parts) == 3
        and parts[0] == SpecialChars.WILDCARD_MULTI
        and parts[2] == SpecialChars.WILDCARD_MULTI
        and isinstance(parts[1], str)
    ):
        return "contains", parts[1].lower()
    return None


def _field_set(name: str, shapes: list[tuple[str, str]]) -> Matcher:
    """Several plain string tests of one field OR-ed (a Sigma value list): one pass per value."""
    equal = frozenset(text for kind, text in shapes if kind == "eq")
    prefixes = tuple(text for kind, text in shapes if kind == "prefix")
    suffixes = tuple(text for kind, text in shapes if kind == "suffix")
    inside = tuple(text for kind, text in shapes if kind == "contains")

    def match(view: FieldView) -> bool:
        values = view.get(name)
        if values is None:
            return False
        for v in values:
            if v in equal or v.startswith(prefixes) or v.endswith(suffixes):
                return True
            for text in inside:
                if text in v:
                    return True
        return False

    return match


def _compile_or(node) -> Matcher:
    """OR: plain string tests of the same field are merged into one matcher per field."""
    by_field: dict[str, list[tuple[str, str]]] = {}
    others = []
    for arg in node.args:
        shape = _shape(arg.value) if isinstance(arg, ConditionFieldEqualsValueExpression) else None
        if shape is None:
            others.append(arg)
        else:
            by_field.setdefault(arg.field.lower(), []).append(shape)
    matchers = [_field_set(name, shapes) for name, shapes in by_field.items()]
    return _any(matchers + [compile_condition(arg) for arg in others])


def compile_condition(node) -> Matcher:
    if isinstance(node, ConditionAND):
        return _all([compile_condition(arg) for arg in node.args])
    if isinstance(node, ConditionOR):
        return _compile_or(node)
    if isinstance(node, ConditionNOT):
        inner = compile_condition(node.args[0])
        return lambda view: not inner(view)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_matcher(node.field.lower(), node.value)
    if isinstance(node, ConditionValueExpression):
        return _keyword(node.value)
    raise Unsupported(f"condition element {type(node).__name__} is not supported")


def required_event_ids(node) -> frozenset[int] | None:
    """EventIDs an event must have to match (None: any), used to skip rules cheaply."""
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if node.field.lower() != "eventid":
            return None
        value = node.value
        if isinstance(value, SigmaNumber):
            return frozenset({int(value.number)})
        if isinstance(value, SigmaString) and not value.contains_special():
            plain = _plain(value).strip()
            return frozenset({int(plain)}) if plain.isdigit() else None
        return None
    if isinstance(node, ConditionOR):
        union: set[int] = set()
        for arg in node.args:
            ids = required_event_ids(arg)
            if ids is None:
                return None
            union |= ids
        return frozenset(union)
    if isinstance(node, ConditionAND):
        found = [ids for ids in map(required_event_ids, node.args) if ids is not None]
        if not found:
            return None
        return frozenset(set.intersection(*map(set, found)))
    return None


# --- compiled rules -----------------------------------------------------------------------------
@dataclass
class CompiledRule:
    rule_id: str
    title: str
    severity: int
    category: str
    techniques: list[str]
    description: str
    path: str
    match: Matcher
    event_ids: frozenset[int] | None
    # The logs the rule runs on (logsource.py); the engine dispatches by them.
    sources: tuple[Source, ...] = (Source(None, None),)
    level: str = ""
    status: str = ""
    # (field, text) pairs one of which must occur for a match (prefilter.py); None: always try.
    needs: frozenset[tuple[str, str]] | None = None
    generates_alerts: bool = True
    correlations: list[CompiledCorrelation] = field(default_factory=list)

    def accepts(self, channel: str, code: int | None) -> bool:
        """Whether an event of this channel and id is from a log the rule was written for."""
        for source in self.sources:
            if source.channel is not None and source.channel != channel:
                continue
            if source.event_ids is not None and code not in source.event_ids:
                continue
            return True
        return False

    def applies(self, view: FieldView) -> bool:
        return self.accepts(view.channel, view.code) and self.match(view)


@dataclass
class CompiledCorrelation:
    rule_id: str
    title: str
    severity: int
    category: str
    techniques: list[str]
    description: str
    path: str
    kind: str  # "event_count", "value_count", "temporal" or "temporal_ordered"
    group_by: list[str]
    window_seconds: int
    threshold: int  # fires when the metric reaches this (gt N is stored as N + 1)
    exact: bool  # `eq`: fires only while the metric equals the threshold
    value_field: str | None = None
    # Temporal: per step (its `rules` in order), the base rule ids whose events make it and how
    # many it needs (1; a chained event_count correlation: its threshold).
    steps: list[tuple[frozenset[str], int]] = field(default_factory=list)
    # False when another correlation uses this one as a step (and does not `generate`).
    generates_alerts: bool = True

    @property
    def temporal(self) -> bool:
        return self.kind in ("temporal", "temporal_ordered")

    def steps_of(self, rule_id: str) -> list[int]:
        """The steps an event of this base rule counts for."""
        return [k for k, (ids, _count) in enumerate(self.steps) if rule_id in ids]


@dataclass
class RuleEntry:
    """One loaded (or refused) rule, as listed by the admin and `manage.py sigma_rules`."""

    rule_id: str
    title: str
    path: str
    kind: str  # rule / correlation / file
    level: str = ""
    error: str = ""


@dataclass
class SigmaRuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    entries: list[RuleEntry] = field(default_factory=list)


def _tags(rule) -> tuple[str, list[str]]:
    category, techniques = "", []
    for tag in rule.tags or []:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower().replace("-", "_")
        if _TECHNIQUE.match(name):
            techniques.append(name.upper())
        elif name in _TACTICS and not category:
            category = name
    return category or "sigma", techniques


def _level(rule) -> str:
    return rule.level.name.lower() if rule.level is not None else ""


def _common(rule, path: str) -> dict:
    category, techniques = _tags(rule)
    return {
        "rule_id": f"sigma:{rule.id or rule.name or rule.title}",
        "title": rule.title,
        "severity": LEVEL_SEVERITY.get(_level(rule), 3),
        "category": category,
        "techniques": techniques,
        "description": (rule.description or "").strip(),
        "path": path,
    }


def _compile_rule(rule: SigmaRule, path: str) -> CompiledRule:
    if len(rule.detection.parsed_condition) != 1:
        raise Unsupported("rules with several conditions are not supported")
    tree = rule.detection.parsed_condition[0].parsed
    logsource = rule.logsource
    try:
        sources = sources_for(logsource.product, logsource.category, logsource.service)
    except UnmappedLogsource as exc:
        raise Unsupported(str(exc)) from exc
    event_ids = required_event_ids(tree)
    sources = narrow(sources, event_ids)
    if not sources:
        raise Unsupported("the EventIDs the detection requires are not in its logsource")
    return CompiledRule(
        **_common(rule, path),
        match=compile_condition(tree),
        event_ids=event_ids,
        sources=tuple(sources),
        level=_level(rule),
        status=rule.status.name.lower() if rule.status is not None else "",
        needs=necessary(tree),
    )


_OPERATORS = {
    SigmaCorrelationConditionOperator.GTE: (0, False),
    SigmaCorrelationConditionOperator.GT: (1, False),
    SigmaCorrelationConditionOperator.EQ: (0, True),
}


_KINDS = {
    SigmaCorrelationType.EVENT_COUNT: "event_count",
    SigmaCorrelationType.VALUE_COUNT: "value_count",
    SigmaCorrelationType.TEMPORAL: "temporal",
    SigmaCorrelationType.TEMPORAL_ORDERED: "temporal_ordered",
}
_TEMPORAL = (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED)


def _compile_correlation(rule: SigmaCorrelationRule, path: str) -> CompiledCorrelation:
    if rule.type not in _KINDS:
        raise Unsupported(f"correlation type {rule.type.name.lower()} is not supported")
    if rule.aliases and rule.aliases.aliases:
        raise Unsupported("correlation field aliases are not supported")
    condition = rule.condition
    if rule.type in _TEMPORAL:
        references = rule.rules or []
        every = (SigmaCorrelationConditionOperator.GTE, len(references))
        if not isinstance(condition, SigmaCorrelationCondition) or (
            (condition.op, condition.count) != every
        ):
            raise Unsupported("temporal conditions other than all of its rules are not supported")
        if not rule.group_by:
            raise Unsupported("temporal correlations without group-by are not supported")
        return CompiledCorrelation(
            **_common(rule, path),
            kind=_KINDS[rule.type],
            group_by=[name.lower() for name in rule.group_by],
            window_seconds=int(rule.timespan.seconds),
            threshold=len(references),
            exact=False,
        )
    if condition.op not in _OPERATORS:
        raise Unsupported(
            f"correlation condition {condition.op.name.lower()} cannot fire in real time"
        )
    offset, exact = _OPERATORS[condition.op]
    value_field = None
    if rule.type == SigmaCorrelationType.VALUE_COUNT:
        if not condition.fieldref:
            raise Unsupported("value_count needs a condition field")
        value_field = condition.fieldref.lower()
    return CompiledCorrelation(
        **_common(rule, path),
        kind=_KINDS[rule.type],
        group_by=[name.lower() for name in rule.group_by or []],
        window_seconds=int(rule.timespan.seconds),
        threshold=int(condition.count) + offset,
        exact=exact,
        value_field=value_field,
    )


def _error_text(errors) -> str:
    return "; ".join(str(e) for e in errors)[:2000]


@dataclass(frozen=True)
class RuleFilter:
    """Which rules to load by their own `level` and `status` (SIGMA_MIN_LEVEL, ..._STATUSES)."""

    min_level: str = "informational"
    skip_statuses: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls) -> RuleFilter:
        from django.conf import settings

        return cls(settings.SIGMA_MIN_LEVEL, frozenset(settings.SIGMA_SKIP_STATUSES))

    def refusal(self, rule) -> str:
        """Why the settings leave this rule out ('' if they do not)."""
        status = rule.status.name.lower() if rule.status is not None else ""
        if status and status in self.skip_statuses:
            return f"{SKIPPED} status {status} is in SIGMA_SKIP_STATUSES"
        level = _level(rule)
        if level and LEVEL_SEVERITY[level] < LEVEL_SEVERITY[self.min_level]:
            return f"{SKIPPED} level {level} is below SIGMA_MIN_LEVEL ({self.min_level})"
        return ""


SKIPPED = "skipped by setting:"
# Quoted specifics (a value, a path) vary per rule; short names (a category, a service) are kept.
_QUOTED = re.compile(r"'[^']{33,}'|\"[^\"]{33,}\"")


def refusal_reason(error: str) -> str:
    """The kind of a load error, for counting refusals by reason (quoted specifics removed)."""
    first = error.split(";")[0].split("\n")[0]
    return _QUOTED.sub("…", first).strip()[:120]


def load_rules(directory: str | Path, rule_filter: RuleFilter | None = None) -> SigmaRuleSet:
    """Load every `*.yml`/`*.yaml` below `directory`; failures become entries with a reason.

    `rule_filter` leaves out rules by level or status: they are listed, with the setting that
    skipped them as the reason, and never compiled.
    """
    result = SigmaRuleSet()
    root = Path(directory)
    if not root.is_dir():
        result.entries.append(
            RuleEntry(f"dir:{root}", str(root), str(root), "file", error="not a directory")
        )
        return result
    parsed: list[tuple[object, str]] = []
    for file in sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")]):
        path = str(file.relative_to(root))
        try:
            collection = SigmaCollection.from_yaml(
                file.read_text(encoding="utf-8"), collect_errors=True, resolve_references=False
            )
        except Exception as exc:  # noqa: BLE001 - any parser failure is a listed load error
            result.entries.append(RuleEntry(f"file:{path}", path, path, "file", error=str(exc)))
            continue
        for error in collection.errors:
            result.entries.append(RuleEntry(f"file:{path}", path, path, "file", error=str(error)))
        parsed.extend((rule, path) for rule in collection.rules)

    everything = SigmaCollection([rule for rule, _ in parsed], resolve_references=False)
    try:
        everything.resolve_rule_references()
    except Exception as exc:  # noqa: BLE001 - a dangling reference is reported per rule below
        logger.warning("sigma: unresolved rule references: %s", exc)

    compiled_by_rule: dict[int, CompiledRule] = {}
    duplicates: set[int] = set()
    for rule, path in parsed:
        entry = RuleEntry(
            _common(rule, path)["rule_id"],
            rule.title,
            path,
            "correlation" if isinstance(rule, SigmaCorrelationRule) else "rule",
            _level(rule),
        )
        duplicate = next((e for e in result.entries if e.rule_id == entry.rule_id), None)
        result.entries.append(entry)
        if rule.errors:
            entry.error = _error_text(rule.errors)
            continue
        if duplicate is not None:  # alerts and admin switches are keyed by the rule id
            duplicates.add(id(rule))
            entry.rule_id = f"{entry.rule_id}@{path}"[:255]
            entry.error = f"duplicate rule id: already loaded from {duplicate.path}"
            continue
        skipped = rule_filter.refusal(rule) if rule_filter else ""
        if skipped:
            entry.error = skipped
            duplicates.add(id(rule))  # neither compiled nor usable as a correlation's base
            continue
        try:
            if isinstance(rule, SigmaCorrelationRule):
                continue  # compiled after every base rule is
            compiled = _compile_rule(rule, path)
        except Exception as exc:  # noqa: BLE001 - pySigma raises many types; all are listed
            entry.error = str(exc) if isinstance(exc, Unsupported) else f"{exc}"
            continue
        compiled_by_rule[id(rule)] = compiled
        result.rules.append(compiled)

    entries = {entry.rule_id: entry for entry in result.entries}
    counting: dict[int, tuple[CompiledCorrelation, list[CompiledRule]]] = {}
    # Counting correlations first: a temporal one may use them as steps (chained correlations).
    for temporal in (False, True):
        for rule, path in parsed:
            if not isinstance(rule, SigmaCorrelationRule) or rule.errors or id(rule) in duplicates:
                continue
            if (rule.type in _TEMPORAL) != temporal:
                continue
            entry = entries[_common(rule, path)["rule_id"]]
            try:
                correlation = _compile_correlation(rule, path)
                if temporal:
                    bases = _temporal_steps(rule, correlation, compiled_by_rule, counting)
                else:
                    bases = [_base(reference, compiled_by_rule) for reference in rule.rules]
            except Exception as exc:  # noqa: BLE001 - listed, never raised
                entry.error = str(exc)
                continue
            for base in bases:
                if correlation not in base.correlations:
                    base.correlations.append(correlation)
                if not rule.generate:
                    base.generates_alerts = False
            if not temporal:
                counting[id(rule)] = (correlation, bases)
            result.correlations.append(correlation)
    return result


def _base(reference, compiled_by_rule: dict[int, CompiledRule]) -> CompiledRule:
    base = getattr(reference, "rule", None)
    if base is None or id(base) not in compiled_by_rule:
        raise Unsupported(f"referenced rule {reference.reference!r} is not loaded")
    return compiled_by_rule[id(base)]


def _temporal_steps(
    rule: SigmaCorrelationRule,
    correlation: CompiledCorrelation,
    compiled_by_rule: dict[int, CompiledRule],
    counting: dict[int, tuple[CompiledCorrelation, list[CompiledRule]]],
) -> list[CompiledRule]:
    """The steps of a temporal correlation, in its `rules` order; returns the base rules.

    A step is a Sigma rule (one event), or an event_count correlation over Sigma rules grouped
    by the same fields (its threshold of events; the spec's "failed logins followed by a
    successful login"): in a temporal_ordered sequence all of the step's events precede the
    next step's, and the whole sequence lies within the outer timespan.
    """
    bases: list[CompiledRule] = []
    for reference in rule.rules:
        target = getattr(reference, "rule", None)
        if isinstance(target, SigmaCorrelationRule):
            inner = counting.get(id(target))
            if inner is None:
                raise Unsupported(f"referenced correlation {reference.reference!r} is not loaded")
            step, step_bases = inner
            if step.kind != "event_count" or step.exact:
                raise Unsupported("only event_count (gte/gt) correlations can be temporal steps")
            if set(step.group_by) != set(correlation.group_by):
                raise Unsupported("a correlation step must group by the same fields")
            if correlation.kind != "temporal_ordered" and step.threshold > 1:
                raise Unsupported("counted steps are supported in temporal_ordered only")
            if not rule.generate:
                step.generates_alerts = False
            correlation.steps.append((frozenset(b.rule_id for b in step_bases), step.threshold))
            bases.extend(step_bases)
            continue
        base = _base(reference, compiled_by_rule)
        correlation.steps.append((frozenset({base.rule_id}), 1))
        bases.append(base)
    return bases
