from __future__ import annotations

import django_filters

from incidents.models import Incident, IncidentStatus


class IncidentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = django_filters.NumberFilter(field_name="severity")
    severity_min = django_filters.NumberFilter(field_name="severity", lookup_expr="gte")
    assigned_to = django_filters.CharFilter(
        field_name="assigned_to__username", help_text="Username."
    )

    class Meta:
        model = Incident
        fields = ["status", "severity", "severity_min", "assigned_to"]
