from __future__ import annotations

from rest_framework import serializers

from integrations.models import Delivery, Integration


class IntegrationSerializer(serializers.ModelSerializer):
    """Types here; kind-dependent rules (target per kind, a webhook's secret) in the service."""

    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=255,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only. Webhook: the HMAC-SHA256 key of X-SIEM-Signature. "
        "Never returned; omit (or send empty) on PATCH to keep it.",
    )
    min_severity = serializers.IntegerField(min_value=1, max_value=5, required=False)
    categories = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, allow_empty=True
    )
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = Integration
        fields = [
            "id",
            "name",
            "kind",
            "target",
            "min_severity",
            "categories",
            "enabled",
            "secret",
            "has_secret",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "has_secret", "created_at", "updated_at"]

    def get_has_secret(self, obj: Integration) -> bool:
        return bool(obj.secret)


class DeliverySerializer(serializers.ModelSerializer):
    delivery_id = serializers.IntegerField(source="id", read_only=True)
    integration_id = serializers.IntegerField(read_only=True)
    alert_id = serializers.IntegerField(read_only=True, allow_null=True)
    incident_id = serializers.IntegerField(read_only=True, allow_null=True)
    digest_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Delivery
        fields = [
            "delivery_id",
            "integration_id",
            "kind",
            "action",
            "alert_id",
            "incident_id",
            "message_key",
            "attempt",
            "status",
            "http_status",
            "error",
            "duration_ms",
            "digest_id",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
