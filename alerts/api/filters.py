from __future__ import annotations

import django_filters

from alerts.models import Alert, AlertStatus


class AlertFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AlertStatus.choices)
    severity = django_filters.NumberFilter(field_name="severity")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    category = django_filters.CharFilter(field_name="category")
    hostname = django_filters.CharFilter(field_name="hostname")
    assigned_to = django_filters.CharFilter(
        field_name="assigned_to__username", help_text="Username."
    )
    incident = django_filters.NumberFilter(
        field_name="incidents", help_text="Alerts of this incident (the incident page)."
    )

    class Meta:
        model = Alert
        fields = [
            "status",
            "severity",
            "severity_min",
            "category",
            "hostname",
            "assigned_to",
            "incident",
        ]
