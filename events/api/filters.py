from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from events.models import SecurityEvent


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
    computer = django_filters.CharFilter(field_name="computer")
    event_code = django_filters.NumberFilter(field_name="event_code")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    since = UTCIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = UTCIsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")
    ai_score_min = django_filters.NumberFilter(field_name="ai_score", lookup_expr="gte")

    class Meta:
        model = SecurityEvent
        fields = ["computer", "event_code", "severity_min", "since", "until", "ai_score_min"]
