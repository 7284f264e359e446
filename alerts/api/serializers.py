"""Alert representation (with event ids and, for one alert, its activity timeline) and inputs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from alerts import attack, context
from alerts.models import Alert, AlertStatus
from events.api.serializers import StrictIntegerField
from events.models import SecurityEvent

MAX_LINKED_IDS = 1000


class ActivitySerializer(serializers.Serializer):
    action = serializers.CharField()
    actor = serializers.CharField(source="actor_name")
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()


class AlertSerializer(serializers.ModelSerializer):
    assigned_to = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    event_ids = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "alert_id",
            "title",
            "description",
            "severity",
            "category",
            "hostname",
            "status",
            "assigned_to",
            "acknowledged_at",
            "resolved_at",
            "resolution",
            "source",
            "rule_id",
            "mitre_techniques",
            "occurrence_count",
            "first_seen",
            "last_seen",
            "created_at",
            "updated_at",
            "event_ids",
        ]
        read_only_fields = fields

    def get_event_ids(self, alert: Alert) -> list[int]:
        # Uses the view's prefetch (ids only) instead of a query per alert.
        return sorted(event.pk for event in alert.events.all())


class EntitiesSerializer(serializers.Serializer):
    hosts = serializers.ListField(child=serializers.CharField())
    users = serializers.ListField(child=serializers.CharField())
    source_ips = serializers.ListField(child=serializers.CharField())
    logon_types = serializers.ListField(child=serializers.CharField())
    processes = serializers.ListField(child=serializers.CharField())


class TechniqueSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    tactic = serializers.CharField()


class RuleSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    source = serializers.CharField(help_text="`builtin` or `sigma`.")
    level = serializers.CharField()


class AlsoMatchedSerializer(RuleSerializer):
    event_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The alert's events this rule matched (at most 1,000).",
    )


class AlertDetailSerializer(AlertSerializer):
    """One alert: what (rule, ATT&CK), where and who (entities), its cases and its timeline."""

    timeline = ActivitySerializer(source="activities", many=True, read_only=True)
    entities = serializers.SerializerMethodField()
    mitre = serializers.SerializerMethodField()
    rule = serializers.SerializerMethodField()
    also_matched_by = serializers.SerializerMethodField()
    incident_ids = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [
            *AlertSerializer.Meta.fields,
            "entities",
            "mitre",
            "rule",
            "also_matched_by",
            "incident_ids",
            "timeline",
        ]
        read_only_fields = fields

    @extend_schema_field(EntitiesSerializer)
    def get_entities(self, alert: Alert) -> dict:
        return context.entities(alert)

    @extend_schema_field(TechniqueSerializer(many=True))
    def get_mitre(self, alert: Alert) -> list[dict]:
        return attack.techniques(alert.mitre_techniques)

    @extend_schema_field(RuleSerializer(allow_null=True))
    def get_rule(self, alert: Alert) -> dict | None:
        return context.rule(alert)

    @extend_schema_field(AlsoMatchedSerializer(many=True))
    def get_also_matched_by(self, alert: Alert) -> list[dict]:
        return context.also_matched_by(alert)

    def get_incident_ids(self, alert: Alert) -> list[int]:
        return context.incident_ids(alert)

    def get_event_ids(self, alert: Alert) -> list[int]:
        # The link rows' ids alone, no event objects: an alert may hold 10,000 events.
        links = Alert.events.through.objects.filter(alert_id=alert.pk)
        return list(links.order_by("securityevent_id").values_list("securityevent_id", flat=True))


class RelatedAlertSerializer(serializers.ModelSerializer):
    assigned_to = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Alert
        fields = [
            "alert_id",
            "title",
            "severity",
            "status",
            "hostname",
            "assigned_to",
            "occurrence_count",
            "created_at",
        ]
        read_only_fields = fields


class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    count = serializers.IntegerField()


class OccurrencesSerializer(serializers.Serializer):
    interval_sec = serializers.IntegerField()
    buckets = BucketSerializer(many=True)


class CommentSerializer(serializers.Serializer):
    comment_id = serializers.IntegerField(source="pk", read_only=True)
    author = serializers.CharField(source="author_name", read_only=True)
    text = serializers.CharField(max_length=10000, trim_whitespace=True)
    created_at = serializers.DateTimeField(read_only=True)


class CommentInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10000, trim_whitespace=True)


class StrictPatchMixin:
    """A PATCH body: known fields only (a typo is an error, not ignored), and not empty."""

    def validate(self, attrs: dict) -> dict:
        unknown = unknown_fields(self)
        if unknown:
            raise serializers.ValidationError(
                {name: "This field cannot be changed." for name in sorted(unknown)}
            )
        if not attrs:
            raise serializers.ValidationError({"detail": "Nothing to change."})
        return attrs


def unknown_fields(serializer: serializers.Serializer) -> set[str]:
    """Keys of the request body that the serializer does not know (a PATCH typo is an error)."""
    data = serializer.initial_data
    return set(data) - set(serializer.fields) if isinstance(data, dict) else set()


INT64_MAX = 2**63 - 1


def existing_ids(model, ids: list[int], field: str) -> list:
    """The rows for `ids`, or a field error naming the ids that do not exist."""
    ids = list(dict.fromkeys(ids))
    # An id past the 64-bit range names no row, and SQLite cannot even bind it (a 500 found
    # by schemathesis): it is simply unknown.
    rows = list(model.objects.filter(pk__in=[i for i in ids if i <= INT64_MAX]))
    missing = sorted(set(ids) - {row.pk for row in rows})
    if missing:
        raise serializers.ValidationError({field: f"Unknown ids: {missing[:20]}"})
    return rows


class AlertCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    severity = StrictIntegerField(min_value=1, max_value=5)
    category = serializers.CharField(max_length=64)
    hostname = serializers.CharField(max_length=255, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    event_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1), required=False, max_length=MAX_LINKED_IDS
    )

    def validate(self, attrs: dict) -> dict:
        attrs["events"] = existing_ids(SecurityEvent, attrs.pop("event_ids", []), "event_ids")
        return attrs


class AlertUpdateSerializer(StrictPatchMixin, serializers.Serializer):
    """PATCH: any subset; resolving via status works too (resolve endpoint has more options)."""

    title = serializers.CharField(max_length=255, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    severity = StrictIntegerField(min_value=1, max_value=5, required=False)
    category = serializers.CharField(max_length=64, required=False)
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=AlertStatus.choices, required=False)
    assigned_to = serializers.CharField(
        max_length=150, required=False, allow_null=True, help_text="Username; null unassigns."
    )


class AcknowledgeSerializer(serializers.Serializer):
    assigned_to = serializers.CharField(
        max_length=150, required=False, help_text="Username; default: the caller."
    )


class AssignSerializer(serializers.Serializer):
    assigned_to = serializers.CharField(
        max_length=150, allow_null=True, help_text="Username; null unassigns."
    )


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(required=False, allow_blank=True, default="")
    false_positive = serializers.BooleanField(required=False, default=False)
