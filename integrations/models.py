"""Outgoing notifications: where to send (Integration) and what happened to each send (Delivery).

One Delivery row is one attempt: a retry adds a row with the next attempt number and the same
`message_key`, so the log shows every try with its HTTP code, error and duration.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from siem.choices import Severity


class IntegrationKind(models.TextChoices):
    WEBHOOK = "webhook", "webhook (signed JSON)"
    SLACK = "slack", "Slack / Mattermost / Rocket.Chat incoming webhook"
    TELEGRAM = "telegram", "Telegram bot"
    EMAIL = "email", "e-mail"


class Integration(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=IntegrationKind.choices)
    target = models.CharField(
        max_length=1000,
        help_text="URL (webhook, slack), chat id (telegram) or comma-separated addresses (email).",
    )
    min_severity = models.PositiveSmallIntegerField(
        choices=Severity.choices,
        default=Severity.HIGH,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    categories = models.JSONField(
        default=list, blank=True, help_text="Alert categories to send; empty: every category."
    )
    enabled = models.BooleanField(default=True)
    # Write-only: never returned by the API, never rendered by the admin, never logged.
    secret = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_severity__gte=1, min_severity__lte=5),
                name="integration_min_severity_1_5",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"
    RETRYING = "retrying", "failed, retried"
    DIGESTED = "digested", "collected into a digest"


class MessageKind(models.TextChoices):
    ALERT = "alert", "alert"
    INCIDENT = "incident", "incident"
    DIGEST = "digest", "digest"
    TEST = "test", "test"


class Delivery(models.Model):
    """One attempt to send one message to one integration."""

    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="deliveries"
    )
    kind = models.CharField(max_length=16, choices=MessageKind.choices)
    action = models.CharField(max_length=32)
    # What the message is about, for the log (SET_NULL: the log outlives a purged alert).
    alert = models.ForeignKey(
        "alerts.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    incident = models.ForeignKey(
        "incidents.Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Identifies the message across attempts ("alert:42:created"); one first attempt per
    # integration and key is what makes routing safe to run twice.
    message_key = models.CharField(max_length=100)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The webhook body (type, action, data, url) and the facts the chat/e-mail texts show,
    # frozen when the message is routed.
    body = models.JSONField(default=dict)
    summary = models.JSONField(default=dict)
    # A digested alert points to the digest message that carried it.
    digest = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="digested"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Set by the worker that claims the attempt (a conditional UPDATE): two workers never send
    # the same attempt.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["integration", "created_at"], name="delivery_integration_idx"),
            models.Index(fields=["status", "created_at"], name="delivery_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "message_key", "attempt"], name="delivery_one_per_attempt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_key} → {self.integration_id} #{self.attempt} {self.status}"
