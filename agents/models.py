from __future__ import annotations

import hashlib
import uuid

from django.db import models
from django.utils import timezone


class AgentStatus(models.TextChoices):
    ONLINE = "online", "online"
    OFFLINE = "offline", "offline"


def hash_agent_token(token: str) -> str:
    """SHA-256 of a 256-bit random token: enough for a secret that is never chosen by a human."""
    return hashlib.sha256(token.encode()).hexdigest()


class Agent(models.Model):
    agent_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    hostname = models.CharField(max_length=255)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    os = models.CharField(max_length=255, blank=True)
    version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=8, choices=AgentStatus.choices, default=AgentStatus.ONLINE)
    last_seen = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    # Only the hash is stored; the token is shown once, at enrollment.
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]
        indexes = [
            models.Index(fields=["status", "last_seen"], name="agent_status_seen_idx"),
            models.Index(fields=["hostname"], name="agent_hostname_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.hostname} ({self.agent_id})"

    @property
    def token_active(self) -> bool:
        return self.token_revoked_at is None
