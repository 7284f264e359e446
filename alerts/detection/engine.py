"""The detection stage: every stored event passes through here once, right after commit.

`Engine.process(events)` for one micro-batch (an ingestion batch):

1. Build one normalized field view per event whose code some rule reads (the others are
   skipped without a view: the rules are indexed by EventID).
2. Single-event rules (built-in and Sigma) that match add the event to a finding keyed by
   (rule, host, account, source).
3. Correlated rules (built-in brute force / spraying, Sigma correlations) send one atomic window
   update per event to Redis, in one pipeline for the batch; events newly reported by a window
   that reached its threshold are added to the finding of (rule, group).
4. The findings go to `alerts.services.raise_or_repeat_many`: each is a new alert, or a repeat
   that adds `count` to the open alert's occurrence_count and broadcasts `updated`.

So a burst of 3,561 failed logons from one attacker is one alert whose occurrence_count is the
number of failed logons that were part of a qualifying window, whatever the batch sizes and
however many workers share the burst.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.db import DatabaseError

from alerts.detection.builtin import BUILTIN_RULES, BuiltinRule
from alerts.detection.catalog import sync_sigma_rules
from alerts.detection.dispatch import Dispatch
from alerts.detection.exceptions import Compiled, compile_exceptions
from alerts.detection.exceptions import matches as exception_matches
from alerts.detection.fields import FieldView, event_view, remote_source
from alerts.detection.hits import hit_counts, record_hits
from alerts.detection.sigma import (
    CompiledCorrelation,
    CompiledRule,
    RuleFilter,
    SigmaRuleSet,
    load_rules,
)
from alerts.detection.updates import installed_rules_dir
from alerts.detection.windows import WindowSpec, WindowStore
from alerts.services import raise_or_repeat_many

logger = logging.getLogger(__name__)


@dataclass
class RuleSettings:
    enabled: bool = True
    threshold: int | None = None
    window_seconds: int | None = None
    severity: int | None = None


@dataclass
class DetectionConfig:
    """What the admin says: built-in overrides and the Sigma rules switched off."""

    builtin: dict[str, RuleSettings] = field(default_factory=dict)
    sigma_disabled: frozenset[str] = frozenset()
    # Rule management (exceptions.py): exceptions per rule, Sigma level overrides as severity.
    exceptions: dict[str, Compiled] = field(default_factory=dict)
    severity: dict[str, int] = field(default_factory=dict)

    def rule(self, rule_id: str) -> RuleSettings:
        return self.builtin.get(rule_id) or RuleSettings()

    def excepted(self, rule_id: str, view: FieldView) -> bool:
        """Whether an exception of this rule holds for the event (one lookup if it has none)."""
        exceptions = self.exceptions.get(rule_id)
        return exceptions is not None and exception_matches(exceptions, view)

    def override_levels(self, findings) -> None:
        for finding in findings:
            finding.severity = self.severity.get(finding.rule_id, finding.severity)


def load_config() -> DetectionConfig:
    from alerts.detection.sigma import LEVEL_SEVERITY
    from alerts.models import DetectionRule, RuleException, SigmaRule

    builtin = {
        row.rule_id: RuleSettings(row.enabled, row.threshold, row.window_seconds, row.severity)
        for row in DetectionRule.objects.all()
    }
    disabled = frozenset(SigmaRule.objects.filter(enabled=False).values_list("rule_id", flat=True))
    overrides = SigmaRule.objects.exclude(level_override="").values_list(
        "rule_id", "level_override"
    )
    exceptions = compile_exceptions(RuleException.objects.values_list("rule_id", "conditions"))
    severity = {rule_id: LEVEL_SEVERITY[level] for rule_id, level in overrides}
    return DetectionConfig(builtin, disabled, exceptions, severity)


@dataclass
class Finding:
    rule_id: str
    title: str
    severity: int
    category: str
    techniques: list[str]
    description: str
    hostname: str
    group: tuple[str, ...]
    event_ids: list[int] = field(default_factory=list)
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    level: str = ""  # a Sigma rule's own level ("" for built-in rules)
    single: bool = True  # a single-event rule (not a window, a sequence or a correlation)
    covers: frozenset[str] = frozenset()  # a built-in rule's Sigma rule ids (fold_duplicates)
    # Sigma findings on the same events folded into this (built-in) one: [{"id", "name",
    # "level", "event_ids"}] (fold_duplicates).
    also: list[dict] = field(default_factory=list)

    def add(
        self, event_ids: list[int], count: int, seen: datetime, first: datetime | None = None
    ) -> None:
        self.event_ids.extend(event_ids)
        self.count += count
        first = min(first or seen, seen)
        if self.first_seen is None or first < self.first_seen:
            self.first_seen = first
        if self.last_seen is None or seen > self.last_seen:
            self.last_seen = seen

    @property
    def dedup_key(self) -> str:
        key = "|".join((self.rule_id, *self.group))
        if len(key) > 200:
            key = f"{self.rule_id[:120]}|{hashlib.sha256(key.encode()).hexdigest()}"
        return key


def sigma_key(view: FieldView) -> tuple[str, ...]:
    """(host, account, source) of an event for de-duplicating single-event Sigma alerts."""
    return (
        view.first("computer"),
        view.first("targetusername", "subjectusername", "user") or "-",
        remote_source(view) or "-",
    )


class Engine:
    """Compiled rules of one process; thread-safe (no mutable state besides the config cache)."""

    def __init__(
        self,
        sigma: SigmaRuleSet | None = None,
        store: WindowStore | None = None,
        builtin: tuple[BuiltinRule, ...] = BUILTIN_RULES,
        *,
        fold: bool = True,
    ) -> None:
        self.sigma = sigma or SigmaRuleSet()
        self.fold = fold  # fold_duplicates (off: every rule raises its own alerts, as before)
        self._store = store
        self.builtin = builtin
        self._config: DetectionConfig | None = None
        self._config_at = 0.0
        self._lock = threading.Lock()
        self._builtin_by_code: dict[int, list[BuiltinRule]] = {}
        for rule in builtin:
            for code in rule.event_ids:
                self._builtin_by_code.setdefault(code, []).append(rule)
        self.dispatch = Dispatch(self.sigma.rules)

    # --- configuration -----------------------------------------------------------------------
    @property
    def store(self) -> WindowStore:
        if self._store is None:
            self._store = WindowStore()
        return self._store

    def config(self) -> DetectionConfig:
        with self._lock:
            now = time.monotonic()
            if self._config is None or now - self._config_at >= settings.DETECTION_CONFIG_TTL_SEC:
                self._config = load_config()
                self._config_at = now
            return self._config

    def invalidate(self) -> None:
        with self._lock:
            self._config = None

    # --- evaluation --------------------------------------------------------------------------
    def process(
        self, events: list, *, batch_key: str | None = None, strict: bool = False
    ) -> Counter:
        """Run every enabled rule over stored events and raise the alerts; matches per rule.

        `batch_key` (stable across retries of the same micro-batch) makes the window updates
        idempotent; `strict` raises when Redis is unreachable instead of skipping the windows.
        """
        findings, fired = self.evaluate(events, batch_key=batch_key, strict=strict)
        self.raise_alerts(findings)
        return fired

    def evaluate(
        self, events: list, *, batch_key: str | None = None, strict: bool = False
    ) -> tuple[list[Finding], Counter]:
        """Steps 1-3: match and update the windows; what to raise, and matches per rule."""
        config = self.config()
        findings: dict[tuple[str, tuple[str, ...]], Finding] = {}
        requests: list[tuple] = []
        # Per (rule, group): the rule and the latest event's view (hostname of the finding).
        pending: dict[tuple[str, tuple[str, ...]], tuple[object, object, FieldView]] = {}
        fired: Counter = Counter()

        for event in events:
            code = event.event_code
            builtin = self._builtin_by_code.get(code, ())
            if not builtin and not self.dispatch.may_match(code):
                continue
            view = event_view(event)
            sigma = self.dispatch.candidates(view)
            ts = event.timestamp.timestamp()
            for rule in builtin:
                settings_ = config.rule(rule.rule_id)
                if not settings_.enabled or not rule.match(view):
                    continue
                if config.excepted(rule.rule_id, view):
                    continue
                group = rule.key(view)
                if group is None:
                    continue
                if rule.window:
                    spec = self._builtin_spec(rule, settings_)
                    if rule.steps:
                        value = rule.steps.index(code)
                    else:
                        value = rule.value(view) if rule.value else ""
                    requests.append((rule.rule_id, group, spec, event.pk, ts, value))
                    pending[(rule.rule_id, group)] = (rule, settings_, view)
                    continue
                fired[rule.rule_id] += 1
                self._finding(findings, rule, settings_, view, group).add([event.pk], 1, _ts(event))
            for rule in sigma:
                if rule.rule_id in config.sigma_disabled or not self._applies(rule, view):
                    continue
                if config.excepted(rule.rule_id, view):
                    continue  # neither its alert nor its correlations count the event
                if rule.generates_alerts:
                    fired[rule.rule_id] += 1
                    group = sigma_key(view)
                    self._finding(findings, rule, None, view, group).add([event.pk], 1, _ts(event))
                for correlation in rule.correlations:
                    if (
                        correlation.rule_id in config.sigma_disabled
                        or not correlation.generates_alerts
                    ):
                        continue
                    if config.excepted(correlation.rule_id, view):
                        continue
                    group = tuple(view.value(name) for name in correlation.group_by)
                    if None in group:
                        continue  # a missing group-by field never groups; "-" is a value
                    spec = _sigma_spec(correlation)
                    if correlation.temporal:
                        for step in correlation.steps_of(rule.rule_id):
                            requests.append((correlation.rule_id, group, spec, event.pk, ts, step))
                    else:
                        value = (
                            view.first(correlation.value_field) if correlation.value_field else ""
                        )
                        requests.append((correlation.rule_id, group, spec, event.pk, ts, value))
                    pending[(correlation.rule_id, group)] = (correlation, None, view)

        if requests:
            try:
                hits = self.store.update(requests, token=batch_key)
            except redis.RedisError as exc:
                if strict:
                    raise  # the pipeline keeps the batch and retries it once Redis is back
                # Single-event rules above still alert; windows need Redis (docs/detection.md).
                logger.warning(
                    "detection: Redis unavailable (%s), %d window updates skipped",
                    exc,
                    len(requests),
                )
                hits = {}
            for name, hit in hits.items():
                if hit.reported:
                    rule, settings_, view = pending[name]
                    fired[rule.rule_id] += len(hit.reported)
                    finding = self._finding(findings, rule, settings_, view, name[1])
                    first = datetime.fromtimestamp(hit.first_ts, tz=UTC)
                    last = datetime.fromtimestamp(hit.last_ts, tz=UTC)
                    finding.add(hit.reported, len(hit.reported), last, first)

        # Levels first: a Sigma rule folded into a built-in alert is named with its own level.
        config.override_levels(findings.values())
        found = list(findings.values())
        return (fold_duplicates(found) if self.fold else found), fired

    @staticmethod
    def _applies(rule: CompiledRule, view: FieldView) -> bool:
        """A rule that fails on some odd value is a miss for that event, never a lost batch."""
        try:
            return rule.match(view)  # the dispatch has checked the channel and event id
        except Exception:  # noqa: BLE001 - one rule's bug must not stop detection
            logger.exception("sigma rule %s failed on event %s", rule.rule_id, view.event.pk)
            return False

    @staticmethod
    def _builtin_spec(rule: BuiltinRule, settings_: RuleSettings) -> WindowSpec:
        window = settings_.window_seconds or rule.default_window()
        threshold = settings_.threshold or rule.default_threshold()
        if rule.steps:  # the threshold is the first step's count (N failures, then a success)
            counts = (threshold,) + (1,) * (len(rule.steps) - 1)
            return WindowSpec(window, threshold, steps=counts, ordered=True, anchored=True)
        return WindowSpec(window, threshold, distinct=rule.value is not None)

    @staticmethod
    def _finding(findings, rule, settings_, view: FieldView, group) -> Finding:
        finding = findings.get((rule.rule_id, group))
        if finding is None:
            severity = settings_.severity if settings_ and settings_.severity else rule.severity
            finding = findings[(rule.rule_id, group)] = Finding(
                rule_id=rule.rule_id,
                title=rule.title,
                severity=severity,
                category=rule.category,
                techniques=list(rule.techniques),
                description=f"{rule.description}\n\nKey: {' / '.join(group)}".strip(),
                hostname=view.event.computer,
                group=group,
                level=getattr(rule, "level", ""),
                single=isinstance(rule, CompiledRule) or not getattr(rule, "window", True),
                covers=getattr(rule, "covers", frozenset()),
            )
        return finding

    @staticmethod
    def raise_alerts(findings: list[Finding]) -> None:
        """Step 4. One transaction per micro-batch: one commit instead of one per alert, the
        alerts locked in key order (two workers repeating the same alerts never deadlock), and
        the repeats written and broadcast together (`raise_or_repeat_many`)."""
        if not findings:
            return
        results = raise_or_repeat_many(
            [
                {
                    "dedup_key": finding.dedup_key,
                    "events": finding.event_ids,
                    "seen_at": finding.last_seen,
                    "first_seen": finding.first_seen,
                    "count": finding.count,
                    "title": finding.title,
                    "severity": finding.severity,
                    "category": finding.category,
                    "hostname": finding.hostname,
                    "source": "rule",
                    "rule_id": finding.rule_id,
                    "mitre_techniques": finding.techniques,
                    "description": finding.description,
                    **({"also_matched": finding.also} if finding.also else {}),
                }
                for finding in findings
            ],
            dedup_window=timedelta(seconds=settings.DETECTION_DEDUP_WINDOW_SEC),
        )
        # In the pipeline step this is the batch's transaction: a retried batch counts once.
        record_hits(hit_counts(findings, results))


def _families(techniques: list[str]) -> set[str]:
    """ATT&CK technique families: T1070.001 and T1070 are both T1070."""
    return {technique.split(".", 1)[0].upper() for technique in techniques}


def fold_duplicates(findings: list[Finding]) -> list[Finding]:
    """One alert when a built-in and a Sigma rule detect the same thing on the same events.

    A single-event Sigma finding whose events are all events of single-event built-in findings
    of this micro-batch that share an ATT&CK technique family with it (DCSync seen by both
    `builtin.dcsync` and SigmaHQ's "Mimikatz DC Sync", T1003.006), or that list it in their
    `covers` table (the audit log cleared: SigmaHQ now tags it T1685.005, ATT&CK v18), raises
    no alert of its own: the Sigma rule is recorded on those built-in
    findings (`also_matched`, with the events it matched). Matching is untouched: the rule
    still counts its matches. A Sigma finding with any event of its own or no shared technique,
    and windowed or correlated findings on either side (their events depend on thresholds and
    batch boundaries, not on the event alone), alert as before.
    """
    builtin = [
        f for f in findings if not f.rule_id.startswith("sigma:") and f.single and f.event_ids
    ]
    if not builtin:
        return findings
    kept: list[Finding] = []
    for finding in findings:
        sigma = finding.rule_id.startswith("sigma:")
        if not sigma or not finding.single:
            kept.append(finding)
            continue
        families = _families(finding.techniques)
        events = set(finding.event_ids)
        hosts = [
            b
            for b in builtin
            if (finding.rule_id in b.covers or families & _families(b.techniques))
            and events & set(b.event_ids)
        ]
        if not hosts or not events <= set().union(*(set(b.event_ids) for b in hosts)):
            kept.append(finding)
            continue
        for host in hosts:
            mine = sorted(events & set(host.event_ids))
            entry = {
                "id": finding.rule_id,
                "name": finding.title,
                "level": finding.level,
                "event_ids": mine,
            }
            known = next((e for e in host.also if e["id"] == finding.rule_id), None)
            if known is None:
                host.also.append(entry)
            else:
                known["event_ids"] = sorted({*known["event_ids"], *mine})
    return kept


def _sigma_spec(correlation: CompiledCorrelation) -> WindowSpec:
    if correlation.temporal:
        return WindowSpec(
            correlation.window_seconds,
            correlation.threshold,
            steps=tuple(count for _ids, count in correlation.steps),
            ordered=correlation.kind == "temporal_ordered",
        )
    return WindowSpec(
        correlation.window_seconds,
        correlation.threshold,
        correlation.exact,
        correlation.kind == "value_count",
    )


def _ts(event) -> datetime:
    return event.timestamp


# --- the process-wide engine ------------------------------------------------------------------
_engine: Engine | None = None
_engine_dir: str | None = None
_engine_source: tuple | None = None
_engine_checked = 0.0
_engine_lock = threading.Lock()


def _rules_signature(directory: str) -> tuple:
    """What the rules directory holds (names, sizes, mtimes): a change means reload."""
    if not directory:
        return ()
    root = Path(directory)
    try:
        files = sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")])
        # The resolved path too: an update swaps the `current` symlink to a new version.
        resolved = str(root.resolve())
        return (
            directory,
            resolved,
            *((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files),
        )
    except OSError:
        return (directory, "unreadable")


def get_engine() -> Engine:
    """The engine of this process, rebuilt when SIGMA_RULES_DIR or its files change.

    The directory is looked at no more often than DETECTION_CONFIG_TTL_SEC, so editing, adding
    or removing a rule file reaches every worker within seconds without a restart.
    """
    global _engine, _engine_dir, _engine_source, _engine_checked
    with _engine_lock:
        now = time.monotonic()
        directory = settings.SIGMA_RULES_DIR or installed_rules_dir()
        fresh = _engine is not None and _engine_dir == directory
        if fresh and now - _engine_checked < settings.DETECTION_CONFIG_TTL_SEC:
            return _engine
        _engine_checked = now
        source = _rules_signature(directory)
        if fresh and source == _engine_source:
            return _engine
        sigma = load_rules(directory, RuleFilter.from_settings()) if directory else SigmaRuleSet()
        for entry in sigma.entries:
            if entry.error:
                logger.warning(
                    "sigma rule %s (%s) not loaded: %s", entry.title, entry.path, entry.error
                )
        _engine, _engine_dir, _engine_source = Engine(sigma), directory, source
        try:
            sync_sigma_rules(sigma)
        except DatabaseError:
            logger.exception("could not record the Sigma rules in the database")
        return _engine


def reset_engine() -> None:
    """Forget the compiled rules and cached config (tests, admin changes in this process)."""
    global _engine
    with _engine_lock:
        _engine = None


def invalidate_config() -> None:
    if _engine is not None:
        _engine.invalidate()
