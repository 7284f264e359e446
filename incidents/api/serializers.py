"""Incident representation (with alert ids and, for one incident, its timeline) and inputs."""

from __future__ import annotations

from rest_framework import serializers

from alerts.api.serializers import (
    MAX_LINKED_IDS,
    ActivitySerializer,
    StrictPatchMixin,
    existing_ids,
    unknown_fields,
)
from alerts.models import Alert
from events.api.serializers import StrictIntegerField
from incidents.models import Incident, IncidentStatus, IncidentTask, ObservableKind, TaskStatus


class IncidentSerializer(serializers.ModelSerializer):
    assigned_to = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    alert_ids = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = [
            "incident_id",
            "title",
            "description",
            "severity",
            "status",
            "escalation_level",
            "assigned_to",
            "created_at",
            "updated_at",
            "closed_at",
            "resolution",
            "alert_ids",
        ]
        read_only_fields = fields

    def get_alert_ids(self, incident: Incident) -> list[int]:
        return sorted(alert.pk for alert in incident.alerts.all())


class IncidentDetailSerializer(IncidentSerializer):
    timeline = ActivitySerializer(source="activities", many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline"]
        read_only_fields = fields


class IncidentCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    severity = StrictIntegerField(min_value=1, max_value=5)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    alert_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1), required=False, max_length=MAX_LINKED_IDS
    )
    assigned_to = serializers.CharField(max_length=150, required=False, allow_null=True)

    def validate(self, attrs: dict) -> dict:
        attrs["alerts"] = existing_ids(Alert, attrs.pop("alert_ids", []), "alert_ids")
        return attrs


class IncidentUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    severity = StrictIntegerField(min_value=1, max_value=5, required=False)
    status = serializers.ChoiceField(choices=IncidentStatus.choices, required=False)
    assigned_to = serializers.CharField(
        max_length=150, required=False, allow_null=True, help_text="Username; null unassigns."
    )
    alert_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1),
        required=False,
        max_length=MAX_LINKED_IDS,
        help_text="Replaces the linked alerts.",
    )

    def validate(self, attrs: dict) -> dict:
        unknown = unknown_fields(self)
        if unknown:
            raise serializers.ValidationError(
                {name: "This field cannot be changed." for name in sorted(unknown)}
            )
        if not attrs:
            raise serializers.ValidationError({"detail": "Nothing to change."})
        if "alert_ids" in attrs:
            attrs["alerts"] = existing_ids(Alert, attrs.pop("alert_ids"), "alert_ids")
        return attrs


class EscalateSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class CloseSerializer(serializers.Serializer):
    resolution = serializers.CharField(required=False, allow_blank=True, default="")
    resolve_alerts = serializers.BooleanField(
        required=False, default=False, help_text="Resolve its open alerts with this resolution."
    )


class AddAlertsSerializer(serializers.Serializer):
    alert_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1), min_length=1, max_length=MAX_LINKED_IDS
    )

    def validate(self, attrs: dict) -> dict:
        attrs["alerts"] = existing_ids(Alert, attrs.pop("alert_ids"), "alert_ids")
        return attrs


class TaskSerializer(serializers.ModelSerializer):
    assigned_to = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = IncidentTask
        fields = ["task_id", "incident_id", "title", "status", "assigned_to", "created_at"]
        read_only_fields = fields


class TaskCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    assigned_to = serializers.CharField(max_length=150, required=False, allow_null=True)


class TaskUpdateSerializer(StrictPatchMixin, serializers.Serializer):
    title = serializers.CharField(max_length=255, required=False)
    status = serializers.ChoiceField(choices=TaskStatus.choices, required=False)
    assigned_to = serializers.CharField(
        max_length=150, required=False, allow_null=True, help_text="Username; null unassigns."
    )


class ObservableSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ObservableKind.choices)
    value = serializers.CharField(max_length=512)
    source = serializers.CharField(
        read_only=True, help_text="`alert` (an entity of its alerts' events) or `manual`."
    )
