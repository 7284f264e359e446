"""Reads behind the hunting page: matching events, histogram, facets, export.

Portable ORM only (SQLite, PostgreSQL, SQL Server). The histogram groups by `Trunc` to the
largest calendar unit that divides the bucket width and adds those up in Python, because
"5-minute buckets" has no portable SQL spelling; the groups are at most a few thousand.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Trunc

from events.models import SecurityEvent
from events.query import Equals, raw_field

DEFAULT_RANGE = timedelta(hours=24)
MAX_BUCKETS = 120
# Round bucket widths, in seconds.
INTERVALS = (
    1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400,
)  # fmt: skip
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
FACET_SIZE = 10
# A raw field's top values are counted over at most this many matching events, the newest
# (as Kibana Discover does): the value of a raw field has to be read from each event's record,
# which for a whole day of events is seconds. Stored columns are always counted exactly.
FACET_SAMPLE = 10_000
# Facet name → the column (or related column) it counts; anything else is a raw field.
STORED_FACETS = {
    "computer": "computer",
    "event_code": "event_code",
    "severity": "severity",
    "user_name": "user_name",
    "source_ip": "source_ip",
    "source_type": "source_type",
    "message": "message",
    "agent": "agent__hostname",
}
EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
EXPORT_COLUMNS = (
    "event_id",
    "timestamp",
    "computer",
    "event_code",
    "severity",
    "source_type",
    "user_name",
    "source_ip",
    "message",
    "ai_score",
    "ai_category",
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def matching(condition: Q, since: datetime | None, until: datetime | None) -> QuerySet:
    rows = SecurityEvent.objects.filter(condition)
    if since is not None:
        rows = rows.filter(timestamp__gte=since)
    if until is not None:
        rows = rows.filter(timestamp__lte=until)
    return rows


def choose_interval(since: datetime, until: datetime) -> int:
    span = max(1.0, (until - since).total_seconds())
    for interval in INTERVALS:
        if span / interval <= MAX_BUCKETS:
            return interval
    return INTERVALS[-1]


def histogram(rows: QuerySet, since: datetime, until: datetime) -> tuple[int, list]:
    """(interval in seconds, [(bucket start, count)]) covering since..until, zeros included.

    1. Pick the bucket width (`choose_interval`) and the largest unit dividing it.
    2. Count per truncated unit in the database (GROUP BY). COUNT(*), not COUNT(pk): with no
       query that is an index-only scan of the timestamp index.
    3. Add the units into buckets aligned on multiples of the width since the epoch.
    """
    interval = choose_interval(since, until)
    unit = next(name for name, seconds in UNITS if interval % seconds == 0)
    counts = (
        rows.order_by()
        .annotate(slot=Trunc("timestamp", unit, tzinfo=UTC))
        .values("slot")
        .annotate(n=Count("*"))
        .values_list("slot", "n")
    )
    first = int(since.timestamp()) // interval * interval
    last = int(until.timestamp()) // interval * interval
    buckets = dict.fromkeys(range(first, last + 1, interval), 0)
    for slot, n in counts:
        if slot.tzinfo is None:  # SQL Server and SQLite may hand back naive UTC
            slot = slot.replace(tzinfo=UTC)
        key = int(slot.timestamp()) // interval * interval
        if key in buckets:
            buckets[key] += n
        else:  # a unit that starts before `since` but holds events after it
            buckets[max(first, min(last, key))] += n
    return interval, [(datetime.fromtimestamp(key, UTC), n) for key, n in buckets.items()]


def facet(rows: QuerySet, field: str) -> dict:
    """The top values of `field` with their counts (most frequent first), empty ones left out:
    `{"values": [{"value", "count"}], "sampled": bool, "sample_size": n | None}`.

    A stored column is counted over every matching event (`sampled` false). A raw field is
    counted over the newest `FACET_SAMPLE` matching events when more match (`sampled` true,
    `sample_size` the number of events counted), else over all of them.
    """
    sampled, sample_size = False, None
    if field in STORED_FACETS:
        column = STORED_FACETS[field]
        values = rows.order_by().exclude(**{f"{column}__isnull": True}).annotate(v=F(column))
        if field not in {"event_code", "severity"}:
            values = values.exclude(**{column: ""})
    else:
        if rows.order_by()[FACET_SAMPLE : FACET_SAMPLE + 1].exists():
            newest = rows.order_by("-timestamp", "-event_id").values("pk")[:FACET_SAMPLE]
            rows = SecurityEvent.objects.filter(pk__in=newest)
            sampled, sample_size = True, FACET_SAMPLE
        # Plain comparisons on the extracted text: Django's JSON-aware lookups would read ""
        # as a JSON document on SQLite.
        value = raw_field(field)
        values = (
            rows.order_by().annotate(v=value).filter(v__isnull=False).exclude(Equals(value, ""))
        )
    top = values.values("v").annotate(n=Count("*")).order_by("-n", "v")[:FACET_SIZE]
    return {
        "values": [{"value": row["v"], "count": row["n"]} for row in top],
        "sampled": sampled,
        "sample_size": sample_size,
    }


def export_limit() -> int:
    return settings.EXPORT_MAX_EVENTS


def export(rows: QuerySet, kind: str) -> tuple[str, Iterator[str]]:
    """(content type, the lines) of every matching event, newest first, at most the limit."""
    rows = rows.order_by("-timestamp", "-event_id").select_related("agent")[: export_limit()]
    if kind == "csv":
        return EXPORT_FORMATS[kind], _csv_lines(rows)
    return EXPORT_FORMATS[kind], _jsonl_lines(rows)


def _csv_lines(rows: QuerySet) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([*EXPORT_COLUMNS, "agent", "raw"])
    yield flush()
    for event in rows.iterator(chunk_size=1000):
        values = [getattr(event, name) for name in EXPORT_COLUMNS]
        values[1] = iso(event.timestamp)
        host = event.agent.hostname if event.agent_id else ""
        writer.writerow(
            [*("" if v is None else v for v in values), host, json.dumps(event.raw or {})]
        )
        yield flush()


def _jsonl_lines(rows: QuerySet) -> Iterator[str]:
    from events.api.serializers import EventSerializer

    for event in rows.iterator(chunk_size=1000):
        yield json.dumps(EventSerializer(event).data, default=str, ensure_ascii=False) + "\n"
