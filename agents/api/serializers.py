"""Agent enrollment, heartbeat and the agent representation for users."""

from __future__ import annotations

from rest_framework import serializers

from agents.models import Agent


class RegisterSerializer(serializers.Serializer):
    """Enrollment request. The key itself is checked by the view before these fields."""

    enrollment_key = serializers.CharField(write_only=True, trim_whitespace=False)
    hostname = serializers.CharField(
        max_length=255, help_text="Prefer the FQDN: it names the agent."
    )
    ip_address = serializers.IPAddressField(required=False, allow_null=True, allow_blank=True)
    os = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")

    def validate_hostname(self, value: str) -> str:
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            raise serializers.ValidationError("A hostname has no spaces or control characters.")
        return value


class RegisteredSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()
    agent_token = serializers.CharField(help_text="Shown once; the server keeps only its hash.")
    hostname = serializers.CharField()
    re_enrolled = serializers.BooleanField(
        help_text="True when the hostname was known: same agent_id, the old token is replaced."
    )
    batch_max = serializers.IntegerField(help_text="Most events accepted per batch.")
    heartbeat_interval_sec = serializers.IntegerField(help_text="Suggested heartbeat period.")


class HeartbeatSerializer(serializers.Serializer):
    ip_address = serializers.IPAddressField(required=False, allow_null=True, allow_blank=True)
    version = serializers.CharField(max_length=64, required=False, allow_blank=True)


class AgentSerializer(serializers.ModelSerializer):
    token_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Agent
        fields = [
            "agent_id",
            "hostname",
            "ip_address",
            "os",
            "version",
            "status",
            "last_seen",
            "registered_at",
            "token_active",
            "token_revoked_at",
        ]
        read_only_fields = fields


class AgentStatusSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField()
    status = serializers.CharField()
    last_seen = serializers.DateTimeField()
    server_time = serializers.DateTimeField()


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(
        help_text="Items whose record id this agent had already delivered (not stored again)."
    )
    event_ids = serializers.ListField(child=serializers.IntegerField())
