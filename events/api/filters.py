from __future__ import annotations

import django_filters

from events.models import SecurityEvent


class EventFilter(django_filters.FilterSet):
    computer = django_filters.CharFilter(field_name="computer")
    event_code = django_filters.NumberFilter(field_name="event_code")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lte")
    ai_score_min = django_filters.NumberFilter(field_name="ai_score", lookup_expr="gte")

    class Meta:
        model = SecurityEvent
        fields = ["computer", "event_code", "severity_min", "since", "until", "ai_score_min"]
