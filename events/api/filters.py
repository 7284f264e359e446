from __future__ import annotations

import django_filters
from django.db.models import F
from django.db.models.functions import Lower
from rest_framework.exceptions import ValidationError

from events.models import SecurityEvent
from events.query import Equals, QuerySyntaxError, compile_query


def query_filter(queryset, q: str):
    """`queryset` narrowed by the hunting query `q`; a syntax error is 400 on `q`."""
    try:
        return queryset.filter(compile_query(q))
    except QuerySyntaxError as exc:
        raise ValidationError({"q": [str(exc)]}) from None


class EventFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        label="Hunting query (docs/investigation.md), e.g. TargetUserName:admin* AND severity>=4",
    )
    computer = django_filters.CharFilter(method="filter_computer", label="Computer (any case)")
    event_code = django_filters.NumberFilter(field_name="event_code")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")
    ai_score_min = django_filters.NumberFilter(field_name="ai_score", lookup_expr="gte")

    class Meta:
        model = SecurityEvent
        fields = ["q", "computer", "event_code", "severity_min", "since", "until", "ai_score_min"]

    def filter_q(self, queryset, name, value):
        return query_filter(queryset, value)

    def filter_computer(self, queryset, name, value):
        # LOWER(computer) = value: served by event_computer_lower_ts_idx where it exists.
        return queryset.filter(Equals(Lower(F("computer")), value.lower()))
