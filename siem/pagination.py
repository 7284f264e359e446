"""Counts and pages that stay fast on tables of millions of rows (events, alerts).

- `fast_count`: the exact `COUNT(*)` while it is cheap, else an estimate. On PostgreSQL the
  planner's estimate (`pg_class.reltuples` for the whole table, the plan's row estimate for a
  filtered one) replaces any count above ESTIMATE_ABOVE rows, and below it the count stops at
  ESTIMATE_ABOVE + 1 rows in case the estimate was too low. Other databases (SQLite for small
  installations, SQL Server) count exactly as before: a capped count would hide the last pages.
- `EstimatedCountPaginator`: Django's paginator with that count (admin changelists).
- `exact_search`: the admin search boxes of events and alerts, by exact values on indexed
  columns instead of `icontains` over several (a scan of the table).
- `EventPagination` (DRF): `?page=N` exactly as before (same keys `count`, `next`, `previous`,
  `results`; `count` from `fast_count`), plus `?cursor=` keyset pages, newest first, whose cost
  does not grow with the depth: `?cursor=` (empty) starts, each `next` carries the following
  cursor; `previous` is null in cursor mode (forward only).
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from datetime import datetime
from functools import cached_property, reduce

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from siem.api_common import StandardPagination

# Below this many rows (as the planner estimates them) the exact count is cheap enough.
ESTIMATE_ABOVE = 10_000


def fast_count(queryset: QuerySet) -> int:
    """Exact when small or not on PostgreSQL; the planner's estimate when large."""
    if queryset.query.is_empty():  # `.none()`: no query at all
        return 0
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return queryset.count()
    estimate = _postgresql_estimate(queryset, connection)
    if estimate > ESTIMATE_ABOVE:
        return estimate
    # The estimate can be far too low (rows inserted since the last ANALYZE, e.g. the last
    # hour's): count at most ESTIMATE_ABOVE + 1 rows, so that a wrong estimate costs a bounded
    # count, never a scan of millions.
    counted = queryset.order_by()[: ESTIMATE_ABOVE + 1].count()
    return counted if counted <= ESTIMATE_ABOVE else max(estimate, counted)


def _postgresql_estimate(queryset: QuerySet, connection) -> int:
    if not queryset.query.where:
        # The whole table: the statistics autovacuum/ANALYZE keep (-1 before the first one, on a
        # new table, which is then counted exactly).
        # A partitioned table (events, events/partitions.py) has no statistics of its own: the
        # sum of its analyzed partitions' (-1 if none has been analyzed yet).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples >= 0), -1)::bigint "
                "FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid "
                "WHERE t.isleaf",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return row[0] if row and row[0] is not None else -1
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Admin changelists: no `COUNT(*)` over millions of rows on every page view."""

    @cached_property
    def count(self) -> int:
        return fast_count(self.object_list)


def exact_search(queryset: QuerySet, candidates: list[Q]) -> QuerySet | None:
    """`queryset` narrowed to the candidate matches that match some row (one index probe
    each), or None if none does. Usually one remains, and the newest rows then come straight
    from its (column, time) index, instead of an OR that fetches every matching row to sort."""
    manager = queryset.model._default_manager
    present = [q for q in candidates if manager.filter(q).exists()]
    if not present:
        return None
    return queryset.filter(reduce(operator.or_, present))


class EventPagination(StandardPagination):
    """Events: `?page=` with a fast count, and `?cursor=` keyset pages (see module docstring)."""

    django_paginator_class = EstimatedCountPaginator
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        self.cursor_mode = self.cursor_query_param in request.query_params
        if not self.cursor_mode:
            return super().paginate_queryset(queryset, request, view)
        if request.query_params.get("ordering") not in (None, "", "-timestamp"):
            raise ValidationError({"cursor": "Cursor pages are newest first (no `ordering`)."})
        self.request = request
        self.count = fast_count(queryset)
        size = self.get_page_size(request)
        rows = queryset.order_by("-timestamp", "-event_id")
        position = request.query_params[self.cursor_query_param]
        if position:
            timestamp, event_id = _decode(position)
            # `timestamp <= t` is the index condition; ties on t continue below the last id.
            rows = rows.filter(timestamp__lte=timestamp).exclude(
                timestamp=timestamp, event_id__gte=event_id
            )
        page = list(rows[: size + 1])
        self.next_cursor = _encode(page[size - 1]) if len(page) > size else None
        return page[:size]

    def get_paginated_response(self, data):
        if not self.cursor_mode:
            return super().get_paginated_response(data)
        next_url = None
        if self.next_cursor is not None:
            url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
            next_url = replace_query_param(url, self.cursor_query_param, self.next_cursor)
        return Response({"count": self.count, "next": next_url, "previous": None, "results": data})

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count"]["description"] = (
            f"Exact up to {ESTIMATE_ABOVE:,} rows, the database's estimate above that."
        )
        return schema

    def get_schema_operation_parameters(self, view):
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Keyset pages, newest first: empty to start, then the cursor "
                "in `next`. Cost independent of depth (unlike deep `page` numbers).",
                "schema": {"type": "string"},
            },
        ]


def _encode(event) -> str:
    raw = json.dumps([event.timestamp.isoformat(), event.event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, event_id = json.loads(raw)
        return datetime.fromisoformat(stamp), int(event_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValidationError({"cursor": "Invalid cursor."}) from exc
