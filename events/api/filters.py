from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django.db.models import F
from django.db.models.functions import Lower
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError

from events.models import SecurityEvent
from events.query import Equals, QuerySyntaxError, compile_query


def query_filter(queryset, q: str):
    """`queryset` narrowed by the hunting query `q`; a syntax error is 400 on `q`."""
    try:
        return queryset.filter(compile_query(q))
    except QuerySyntaxError as exc:
        raise ValidationError({"q": [str(exc)]}) from None


class UTCIsoDateTimeField(IsoDateTimeField):
    """ISO 8601, converted to UTC here: PostgreSQL refuses zone offsets beyond ±15:59 (Python
    takes up to ±23:59), and a time near year 1 or 9999 may not survive the conversion; both
    are a 400 naming the parameter, never a database error."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of the supported date range.") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class EventFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        label="Hunting query (docs/investigation.md), e.g. TargetUserName:admin* AND severity>=4",
    )
    computer = django_filters.CharFilter(method="filter_computer", label="Computer (any case)")
    event_code = django_filters.NumberFilter(field_name="event_code")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    since = UTCIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")
    ai_score_min = django_filters.NumberFilter(field_name="ai_score", lookup_expr="gte")

    class Meta:
        model = SecurityEvent
        fields = ["q", "computer", "event_code", "severity_min", "since", "until", "ai_score_min"]

    def filter_q(self, queryset, name, value):
        return query_filter(queryset, value)

    def filter_computer(self, queryset, name, value):
        # LOWER(computer) = value: served by event_computer_lower_ts_idx where it exists.
        return queryset.filter(Equals(Lower(F("computer")), value.lower()))
