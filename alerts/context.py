"""What an alert page reads beyond the alert row: who and where (entities), why (rule, ATT&CK),
what else (related alerts, incidents), when (occurrences). Read-only: a fixed handful of
bounded statements, whatever the number of occurrences (bench/alert_page.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import CharField, Count, Q, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce, NullIf, Trunc

from alerts import attack
from alerts.detection.builtin import BUILTIN_BY_ID
from alerts.detection.updates import installed_rules_dir
from alerts.models import Alert, DetectionRule, SigmaRule
from events.models import SecurityEvent

MAX_VALUES = 50  # per entity kind: a spray over 5,000 accounts lists the first 50
# Entities are read from an alert's latest events up to this many: exact for the alerts of the
# SPEC's scale (10,000 occurrences), bounded for a runaway one.
ENTITY_SCAN = 10_000
MAX_RELATED = 20
RELATED_WINDOW = timedelta(hours=24)
MAX_RULE_BYTES = 256 * 1024
# Sigma levels of SPEC's severities (1 info … 5 critical), for built-in rules.
SEVERITY_LEVEL = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical"}
# Raw Windows fields that name the process involved, most specific first.
PROCESS_FIELDS = ("NewProcessName", "ProcessName", "Image")


def alert_events(alert: Alert):
    """The events the alert counted, newest stored first.

    By event id, not event time: the link table's (alert, event) index then hands out a page
    without reading the alert's other events (0.5 ms instead of 250 ms for 10,000 occurrences
    on PostgreSQL under load); for detection alerts the two orders agree but for imports of old
    logs."""
    return SecurityEvent.objects.filter(alerts=alert).order_by("-event_id")


def link_count(alert: Alert) -> int:
    """How many events the alert links (= its occurrence_count), from the link table alone."""
    return Alert.events.through.objects.filter(alert_id=alert.pk).count()


def _latest_links(alert: Alert):
    """The ids of the alert's latest ENTITY_SCAN events (an index range of the link table)."""
    links = Alert.events.through.objects.filter(alert_id=alert.pk)
    return links.order_by("-securityevent_id").values("securityevent_id")[:ENTITY_SCAN]


def entities(alert: Alert) -> dict[str, list[str]]:
    """Hosts, users and source IPs of the alert's events (SPEC), plus logon types and processes,
    from its latest ENTITY_SCAN events in one query. An alert with no linked events (created by
    hand) still names its host."""
    events = SecurityEvent.objects.filter(pk__in=_latest_links(alert))
    found = event_entities(events)
    if alert.hostname and alert.hostname not in found["hosts"]:
        found["hosts"].insert(0, alert.hostname)
    return found


def event_entities(events) -> dict[str, list[str]]:
    """The distinct hosts, users, source IPs, logon types and processes of an event queryset
    (at most MAX_VALUES each, sorted), read in one pass over its rows."""
    process = Coalesce(
        *(
            NullIf(KT(f"raw__{name}"), Value(""), output_field=CharField())
            for name in PROCESS_FIELDS
        ),
        output_field=CharField(),
    )
    rows = (
        events.order_by()
        .annotate(_logon=KT("raw__LogonType"), _process=process)
        .values_list("computer", "user_name", "source_ip", "_logon", "_process")
        .distinct()
    )
    kinds = ("hosts", "users", "source_ips", "logon_types", "processes")
    seen: dict[str, set[str]] = {kind: set() for kind in kinds}
    for row in rows.iterator(chunk_size=2000):
        for kind, value in zip(kinds, row, strict=True):
            if value not in (None, ""):
                seen[kind].add(str(value))
    return {kind: sorted(values)[:MAX_VALUES] for kind, values in seen.items()}


def rule(alert: Alert) -> dict | None:
    """`{"id","name","source","level"}` of the rule that raised the alert; None for manual and
    AI alerts (no rule to read)."""
    if not alert.rule_id:
        return None
    return rule_info(alert.rule_id) or {
        "id": alert.rule_id,
        "name": alert.rule_id,
        "source": "sigma" if alert.rule_id.startswith("sigma:") else "builtin",
        "level": "",
    }


def rule_info(rule_id: str) -> dict | None:
    """The rule's level is the one it raises alerts with now (the admin's override if any)."""
    builtin = BUILTIN_BY_ID.get(rule_id)
    if builtin is not None:
        override = DetectionRule.objects.filter(rule_id=rule_id).values_list("severity", flat=True)
        return {
            "id": rule_id,
            "name": builtin.title,
            "source": "builtin",
            "level": SEVERITY_LEVEL.get(next(iter(override), None) or builtin.severity, ""),
        }
    row = SigmaRule.objects.filter(rule_id=rule_id).first()
    if row is None:
        return None
    return {
        "id": rule_id,
        "name": row.title or rule_id,
        "source": "sigma",
        "level": row.effective_level,
    }


def also_matched_by(alert: Alert) -> list[dict]:
    """The other rules that detected this alert's events and were folded into it (detection's
    `fold_duplicates`): `[{"id","name","source","level","event_ids"}]`."""
    return [
        {
            "id": entry.get("id", ""),
            "name": entry.get("name") or entry.get("id", ""),
            "source": "sigma" if str(entry.get("id", "")).startswith("sigma:") else "builtin",
            "level": entry.get("level", ""),
            "event_ids": list(entry.get("event_ids", [])),
        }
        for entry in alert.also_matched or []
    ]


def rule_document(rule_id: str) -> dict | None:
    """The rule with a way to read it: a Sigma rule's YAML as loaded from SIGMA_RULES_DIR, a
    built-in rule's description, techniques and the settings that tune it."""
    info = rule_info(rule_id)
    if info is None:
        return None
    builtin = BUILTIN_BY_ID.get(rule_id)
    if builtin is not None:
        lines = [f"title: {builtin.title}", f"id: {rule_id}", f"level: {info['level']}"]
        lines.append(f"event_ids: {sorted(builtin.event_ids)}")
        for setting in (builtin.threshold_setting, builtin.window_setting):
            if setting:
                lines.append(f"{setting}: {getattr(settings, setting, '')}")
        lines.append(f"description: {builtin.description}")
        return {
            **info,
            "techniques": attack.techniques(builtin.techniques),
            "text": "\n".join(lines),
            "format": "text",
        }
    row = SigmaRule.objects.get(rule_id=rule_id)
    return {
        **info,
        "techniques": attack.techniques(row.techniques),
        "text": _sigma_text(row.path),
        "format": "yaml",
    }


def _sigma_text(relative: str) -> str:
    """The rule file, read only from inside SIGMA_RULES_DIR (the path comes from the database)."""
    root = settings.SIGMA_RULES_DIR or installed_rules_dir()
    if not root or not relative:
        return ""
    base = Path(root).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return ""
    with path.open("rb") as handle:
        return handle.read(MAX_RULE_BYTES).decode("utf-8", errors="replace")


def related_alerts(alert: Alert, found: dict[str, list[str]] | None = None):
    """Other alerts on the same host, or active within a day of this one whose events share a
    user or a source IP; newest first, at most MAX_RELATED.

    The entity match starts from the other alerts of the window (few) and their links, never
    from this alert's own events (which may number tens of thousands)."""
    found = found if found is not None else entities(alert)
    others = Alert.objects.exclude(pk=alert.pk).order_by()
    ids = set(
        others.filter(hostname__in=found["hosts"])
        .order_by("-created_at")
        .values_list("pk", flat=True)[:MAX_RELATED]
    )
    shared = Q()
    if found["users"]:
        shared |= Q(events__user_name__in=found["users"])
    if found["source_ips"]:
        shared |= Q(events__source_ip__in=found["source_ips"])
    if shared and len(ids) < MAX_RELATED:
        window = others.filter(
            last_seen__gte=alert.first_seen - RELATED_WINDOW,
            first_seen__lte=alert.last_seen + RELATED_WINDOW,
        ).exclude(pk__in=ids)
        ids |= set(window.filter(shared).values_list("pk", flat=True).distinct()[:MAX_RELATED])
    return (
        Alert.objects.filter(pk__in=ids)
        .select_related("assigned_to")
        .order_by("-created_at", "-alert_id")[:MAX_RELATED]
    )


def incident_ids(alert: Alert) -> list[int]:
    return sorted(alert.incidents.values_list("pk", flat=True))


MAX_BUCKETS = 48
# Round bucket sizes, each a multiple of the database truncation it is counted from.
NICE_INTERVALS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
TRUNC_KINDS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
MAX_TRUNC_ROWS = 2000


def occurrences(alert: Alert) -> dict:
    """The alert's events per time bucket, over its first to last event, in at most MAX_BUCKETS
    buckets of a round size: `{"interval_sec", "buckets": [{"start", "count"}]}` (the shape of
    the hunting histogram).

    1. Pick the finest truncation (second, minute, hour, day) that cuts the alert's span
       (first_seen to last_seen) into at most MAX_TRUNC_ROWS pieces.
    2. Count per truncated timestamp in the database (portable `Trunc` + `Count`): a few hundred
       rows come back, not one per occurrence.
    3. Merge those into the smallest round interval that gives at most MAX_BUCKETS buckets.
    """
    span = max((alert.last_seen - alert.first_seen).total_seconds(), 0)
    kind, base = next(
        ((k, s) for k, s in TRUNC_KINDS if span / s <= MAX_TRUNC_ROWS), TRUNC_KINDS[-1]
    )
    rows = (
        SecurityEvent.objects.filter(alerts=alert)
        .annotate(bucket=Trunc("timestamp", kind, tzinfo=UTC))
        .order_by()
        .values("bucket")
        .annotate(n=Count("pk"))
        .values_list("bucket", "n")
    )
    counted = {int(bucket.timestamp()): n for bucket, n in rows}
    if not counted:
        return {"interval_sec": base, "buckets": []}
    low, high = min(counted), max(counted)
    interval = next(
        (n for n in NICE_INTERVALS if n % base == 0 and (high - low) / n < MAX_BUCKETS),
        NICE_INTERVALS[-1],
    )
    origin = low // interval * interval
    counts = [0] * ((high - origin) // interval + 1)
    for start, n in counted.items():
        counts[(start - origin) // interval] += n
    return {
        "interval_sec": interval,
        "buckets": [
            {"start": datetime.fromtimestamp(origin + i * interval, tz=UTC), "count": n}
            for i, n in enumerate(counts)
        ],
    }
