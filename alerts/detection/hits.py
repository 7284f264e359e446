"""Hits per rule: alerts raised and events matched per rule and hour, and the last hit.

`record_hits` upserts one `RuleHit` row per rule and hour, and the rule's all-time row (hour
`ALL_TIME`: totals and the last hit), in the detection transaction (a retried batch rolls back
with it, so nothing counts twice). `hits_by_rule` reads the 24 h and 7 d sums from the rows of
the last 7 days only (the `hour` index) and the last hit from the all-time rows: the cost
follows the rules that fired this week, never the number of alerts or older history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

# The `hour` of a rule's all-time row (never inside a 24 h or 7 d window).
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def record_hits(counts: dict[str, tuple[int, int]], now: datetime | None = None) -> None:
    """Add (alerts raised, events matched) per rule to this hour's row and its all-time row;
    in rule order (two workers never deadlock), inside the caller's transaction."""
    if not counts:
        return
    from alerts.models import RuleHit

    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    qn = connection.ops.quote_name
    table = qn(RuleHit._meta.db_table)
    # Identifiers from the model, quoted; every value is a parameter. ON CONFLICT ... DO UPDATE
    # is the same on PostgreSQL and SQLite (3.24+).
    statement = (
        f"INSERT INTO {table} (rule_id, hour, alerts, events, last_hit)"  # noqa: S608
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (rule_id, hour) DO UPDATE SET"
        f" alerts = {table}.alerts + excluded.alerts,"
        f" events = {table}.events + excluded.events,"
        f" last_hit = CASE WHEN excluded.last_hit > {table}.last_hit"
        f" THEN excluded.last_hit ELSE {table}.last_hit END"
    )
    # Raw SQL: datetimes as the ORM stores them (SQLite keeps naive UTC text).
    adapt = connection.ops.adapt_datetimefield_value
    buckets, last = [adapt(ALL_TIME), adapt(hour)], adapt(now)
    with connection.cursor() as cursor:
        for rule_id in sorted(counts):
            alerts, events = counts[rule_id]
            for bucket in buckets:
                cursor.execute(statement, [rule_id, bucket, alerts, events, last])


def hits_by_rule(rule_ids=None, now: datetime | None = None) -> dict[str, dict]:
    """rule id → {alerts_24h, events_24h, alerts_7d, events_7d, last_hit} for rules with hits.

    "24 h" is the current hour and the 23 before it, "7 d" the current hour and the 167 before
    it (hour buckets); `last_hit` is the latest hit ever recorded.
    """
    from alerts.models import RuleHit

    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    day, week = hour - timedelta(hours=23), hour - timedelta(hours=167)
    rows = RuleHit.objects.order_by()
    if rule_ids is not None:
        rows = rows.filter(rule_id__in=list(rule_ids))
    result = {
        rule_id: {**EMPTY_HITS, "last_hit": last_hit}
        for rule_id, last_hit in rows.filter(hour=ALL_TIME).values_list("rule_id", "last_hit")
    }
    recent = (
        rows.filter(hour__gte=week)
        .values("rule_id")
        .annotate(
            alerts_24h=Sum("alerts", filter=Q(hour__gte=day), default=0),
            events_24h=Sum("events", filter=Q(hour__gte=day), default=0),
            alerts_7d=Sum("alerts"),
            events_7d=Sum("events"),
        )
    )
    for row in recent:
        result.setdefault(row.pop("rule_id"), dict(EMPTY_HITS)).update(row)
    return result


EMPTY_HITS = {"alerts_24h": 0, "events_24h": 0, "alerts_7d": 0, "events_7d": 0, "last_hit": None}


def hit_counts(findings, results) -> dict[str, tuple[int, int]]:
    """rule id → (alerts created, events matched) of one batch's findings and their
    `raise_or_repeat_many` results ((alert, created) pairs, in key order)."""
    counts: dict[str, list[int]] = {}
    for finding in findings:
        counts.setdefault(finding.rule_id, [0, 0])[1] += finding.count
        # A Sigma rule folded into this built-in finding raised no alert, but it matched.
        for folded in finding.also:
            counts.setdefault(folded["id"], [0, 0])[1] += len(folded["event_ids"])
    for alert, created in results:
        if created and alert.rule_id in counts:
            counts[alert.rule_id][0] += 1
    return {rule_id: (alerts, events) for rule_id, (alerts, events) in counts.items()}


def hit_annotations(now: datetime | None = None) -> dict:
    """The same figures as queryset annotations on a model with a `rule_id` (the admin's rule
    changelists: sortable, one indexed sub-select per figure and row of the page)."""
    from django.db.models import IntegerField, OuterRef, Subquery
    from django.db.models.functions import Coalesce

    from alerts.models import RuleHit

    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    since = {"24h": hour - timedelta(hours=23), "7d": hour - timedelta(hours=167)}
    rows = RuleHit.objects.filter(rule_id=OuterRef("rule_id")).order_by()

    def total(name: str, period: str):
        summed = rows.filter(hour__gte=since[period]).values("rule_id").annotate(n=Sum(name))
        return Coalesce(Subquery(summed.values("n"), output_field=IntegerField()), 0)

    return {
        f"{name}_{period}": total(name, period) for name in ("alerts", "events") for period in since
    } | {"last_hit": Subquery(rows.filter(hour=ALL_TIME).values("last_hit")[:1])}


def purge_old_hits(now: datetime | None = None) -> int:
    """Delete the hour rows no read uses any more (older than the 7-day window); the all-time
    rows stay. Run by the daily retention purge (siem/retention.py)."""
    from alerts.models import RuleHit

    now = now or timezone.now()
    week = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=167)
    return RuleHit.objects.filter(hour__lt=week, hour__gt=ALL_TIME).delete()[0]
