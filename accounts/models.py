"""Server-side sessions for issued access tokens (the guide's "Sessions" table)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SessionQuerySet(models.QuerySet):
    def active(self) -> SessionQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class Session(models.Model):
    """One row per issued access token; a token is honoured only while its row is active."""

    jti = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="siem_sessions"
    )
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=100, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    objects = SessionQuerySet.as_manager()

    class Meta:
        verbose_name = "session"
        verbose_name_plural = "sessions"
        ordering = ["-issued_at"]
        indexes = [
            models.Index(
                fields=["user", "revoked_at", "expires_at"], name="session_user_active_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} session {self.jti[:8]}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class AuditLog(models.Model):
    """Security-relevant changes that are not alert or incident timeline entries: sessions
    revoked, agents enrolled or revoked, detection rules enabled, disabled or edited, users'
    roles changed, login lockouts. Written by the services (accounts/audit.py), read-only
    everywhere (the admin shows it to admins)."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action}"
