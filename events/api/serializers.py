"""Event input validation (users and agents) and the event representation."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from events.models import SecurityEvent

INT32_MAX = 2**31 - 1


class StrictIntegerField(serializers.IntegerField):
    """An integer that must be a JSON number: "3", 3.5 and true are wrong types, not 3 and 1."""

    default_error_messages = {"invalid": "A valid integer (JSON number) is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictCharField(serializers.CharField):
    """A string that must be a JSON string: 12 or true are wrong types, not "12" or "True"."""

    default_error_messages = {"invalid": "A valid string is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _has_nul(value: Any) -> bool:
    """NUL characters anywhere in a JSON value (PostgreSQL text and jsonb cannot store them)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class EventInputSerializer(serializers.Serializer):
    """One incoming event. A plain Serializer: use it standalone or with `many=True`.

    `validated_data` is ready for `events.services.create_events` (unset optional fields are
    left out, so the service's defaults apply).
    """

    computer = StrictCharField(max_length=255)
    event_code = StrictIntegerField(min_value=0, max_value=INT32_MAX)
    severity = StrictIntegerField(
        min_value=1, max_value=5, help_text="1 info, 2 low, 3 medium, 4 high, 5 critical."
    )
    message = StrictCharField(allow_blank=True, trim_whitespace=False)
    source_type = StrictCharField(max_length=100)
    timestamp = serializers.DateTimeField(
        required=False, help_text="Event time (ISO 8601; no zone = UTC). Default: now."
    )
    raw = serializers.DictField(required=False, help_text="The original record, any JSON object.")
    user_name = StrictCharField(max_length=255, required=False, allow_blank=True)
    source_ip = StrictCharField(max_length=64, required=False, allow_blank=True)
    agent_record_id = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=-(2**63),
        max_value=2**63 - 1,
        help_text="The agent's own record id (Windows EventRecordID); de-duplicates retries.",
    )

    def validate_raw(self, value: dict) -> dict:
        if _has_nul(value):
            raise serializers.ValidationError("NUL characters (\\u0000) are not allowed.")
        return value


class EventSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = SecurityEvent
        fields = [
            "event_id",
            "timestamp",
            "received_at",
            "computer",
            "agent_id",
            "event_code",
            "severity",
            "message",
            "source_type",
            "user_name",
            "source_ip",
            "raw",
            "ai_status",
            "ai_score",
            "ai_category",
            "ai_description",
            "ai_analyzed_at",
            "ai_provider",
            "ai_error",
        ]
        read_only_fields = fields


class EventCreatedSerializer(serializers.Serializer):
    event_id = serializers.IntegerField()


class BulkCreatedSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    event_ids = serializers.ListField(child=serializers.IntegerField())
