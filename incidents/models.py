from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from siem.choices import Severity
from siem.timeline import Comment, TimelineEntry


class IncidentStatus(models.TextChoices):
    OPEN = "open", "open"
    INVESTIGATING = "investigating", "investigating"
    ESCALATED = "escalated", "escalated"
    CLOSED = "closed", "closed"


class Incident(models.Model):
    incident_id = models.BigAutoField(primary_key=True)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    escalation_level = models.PositiveSmallIntegerField(default=0)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_incidents",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alerts = models.ManyToManyField("alerts.Alert", blank=True, related_name="incidents")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-incident_id"]
        indexes = [
            models.Index(fields=["status", "severity"], name="incident_status_sev_idx"),
            models.Index(fields=["created_at"], name="incident_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1, severity__lte=5), name="incident_severity_1_5"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.incident_id} {self.title}"


class IncidentActivity(TimelineEntry):
    """Audit trail of an incident: who changed what, when, from which status."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="activities")

    class Meta(TimelineEntry.Meta):
        verbose_name_plural = "incident activities"
        indexes = [models.Index(fields=["incident", "created_at"], name="incident_activity_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} incident {self.incident_id}"


class IncidentComment(Comment):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="comments")

    class Meta(Comment.Meta):
        indexes = [models.Index(fields=["incident", "created_at"], name="incident_comment_idx")]

    def __str__(self) -> str:
        return f"{self.author_name} on incident {self.incident_id}"


class TaskStatus(models.TextChoices):
    OPEN = "open", "open"
    DONE = "done", "done"


class IncidentTask(models.Model):
    """A step of the case (TheHive's tasks): a title, who does it, open or done."""

    task_id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=255)
    status = models.CharField(max_length=8, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "task_id"]
        indexes = [models.Index(fields=["incident", "created_at"], name="incident_task_idx")]

    def __str__(self) -> str:
        return self.title


class ObservableKind(models.TextChoices):
    IP = "ip", "IP address"
    USER = "user", "user"
    HOST = "host", "host"
    HASH = "hash", "hash"
    DOMAIN = "domain", "domain"


class IncidentObservable(models.Model):
    """An indicator added to the case by hand (its alerts' entities are derived, not stored)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="observables")
    kind = models.CharField(max_length=8, choices=ObservableKind.choices)
    value = models.CharField(max_length=512)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "kind", "value"], name="incident_observable_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"
