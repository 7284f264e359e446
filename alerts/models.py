from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from siem.choices import Severity
from siem.timeline import Comment, TimelineEntry


class AlertStatus(models.TextChoices):
    NEW = "new", "new"
    ACKNOWLEDGED = "acknowledged", "acknowledged"
    INVESTIGATING = "investigating", "investigating"
    RESOLVED = "resolved", "resolved"
    FALSE_POSITIVE = "false_positive", "false positive"


OPEN_STATUSES = (AlertStatus.NEW, AlertStatus.ACKNOWLEDGED, AlertStatus.INVESTIGATING)


class AlertSource(models.TextChoices):
    RULE = "rule", "detection rule"
    AI = "ai", "AI analyzer"
    MANUAL = "manual", "manual"


class Alert(models.Model):
    alert_id = models.BigAutoField(primary_key=True)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    category = models.CharField(max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.NEW)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_alerts",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=AlertSource.choices, default=AlertSource.MANUAL)
    rule_id = models.CharField(
        max_length=200, blank=True, help_text="Detection rule that raised it."
    )
    mitre_techniques = models.JSONField(default=list, blank=True)
    # Sigma rules that matched this rule alert's events and were folded into it instead of
    # raising their own alert: [{"id", "name", "level", "event_ids"}] (docs/detection.md).
    also_matched = models.JSONField(default=list, blank=True)
    events = models.ManyToManyField("events.SecurityEvent", blank=True, related_name="alerts")
    # De-duplication: an open alert with the same key absorbs repeats (count, last_seen).
    dedup_key = models.CharField(max_length=255, blank=True)
    is_open = models.BooleanField(default=True, editable=False)
    occurrence_count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-alert_id"]
        indexes = [
            models.Index(fields=["status", "severity"], name="alert_status_sev_idx"),
            models.Index(fields=["created_at"], name="alert_created_idx"),
            models.Index(fields=["hostname", "created_at"], name="alert_host_idx"),
            models.Index(fields=["category", "created_at"], name="alert_category_idx"),
            models.Index(fields=["dedup_key", "is_open"], name="alert_dedup_idx"),
            # Dashboard counts of open alerts and the retention purge of closed ones.
            models.Index(fields=["is_open", "status", "severity"], name="alert_open_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1, severity__lte=5), name="alert_severity_1_5"
            ),
            # At most one open alert per de-duplication key, even with several workers racing.
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(is_open=True, dedup_key__gt=""),
                name="alert_one_open_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.alert_id} {self.title}"


class AlertActivity(TimelineEntry):
    """Audit trail: who changed what on an alert, when, and from which status."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="activities")

    class Meta(TimelineEntry.Meta):
        verbose_name_plural = "alert activities"
        indexes = [models.Index(fields=["alert", "created_at"], name="alert_activity_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} alert {self.alert_id}"


class AlertComment(Comment):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="comments")

    class Meta(Comment.Meta):
        indexes = [models.Index(fields=["alert", "created_at"], name="alert_comment_idx")]

    def __str__(self) -> str:
        return f"{self.author_name} on alert {self.alert_id}"


class DetectionRule(models.Model):
    """Admin overrides for a built-in detection rule; empty fields use the settings defaults."""

    rule_id = models.CharField(max_length=64, unique=True)
    enabled = models.BooleanField(default=True)
    threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Events (or distinct accounts) that fire the rule."
    )
    window_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Window in event time, seconds."
    )
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices,
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule_id"]

    def __str__(self) -> str:
        return self.rule_id


class SigmaLevel(models.TextChoices):
    INFORMATIONAL = "informational", "informational"
    LOW = "low", "low"
    MEDIUM = "medium", "medium"
    HIGH = "high", "high"
    CRITICAL = "critical", "critical"


class SigmaRule(models.Model):
    """A Sigma rule found in SIGMA_RULES_DIR: loaded or refused (with the reason), and enabled."""

    rule_id = models.CharField(max_length=255, unique=True)
    title = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=500, blank=True)
    kind = models.CharField(max_length=16, blank=True, help_text="rule, correlation or file")
    level = models.CharField(max_length=16, blank=True, help_text="The rule's own level.")
    level_override = models.CharField(
        max_length=16,
        blank=True,
        choices=SigmaLevel.choices,
        help_text="The level (alert severity) to raise with instead of the rule's own.",
    )
    techniques = models.JSONField(default=list, blank=True, help_text="ATT&CK technique ids.")
    enabled = models.BooleanField(default=True)
    error = models.TextField(blank=True, help_text="Why the rule could not be loaded.")
    loaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["path", "title"]
        verbose_name = "Sigma rule"

    def __str__(self) -> str:
        return self.title or self.rule_id

    @property
    def loaded(self) -> bool:
        return not self.error

    @property
    def effective_level(self) -> str:
        return self.level_override or self.level


class RuleException(models.Model):
    """Events a rule must not alert on: every condition holds (field value, case-insensitive).

    `conditions` maps a field name as the rule reads it (`SubjectUserName`, `host`) to one value
    or a list of values (any of them). A rule's exceptions are alternatives: one that holds is
    enough. Applied by the engine (alerts/detection/exceptions.py) before alerting and before
    counting into the rule's correlation windows.
    """

    rule_id = models.CharField(max_length=255, db_index=True)
    conditions = models.JSONField(help_text='e.g. {"SubjectUserName": "svc_backup"}')
    comment = models.TextField(blank=True, help_text="Why: the ticket, the owner, the expiry.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rule_id", "pk"]
        verbose_name = "rule exception"

    def __str__(self) -> str:
        shown = ", ".join(f"{name}: {value}" for name, value in (self.conditions or {}).items())
        return f"{self.rule_id} unless {shown}"[:255]


class RuleHit(models.Model):
    """Per rule and hour (wall clock): alerts raised, events matched, the last hit.

    Written in the detection transaction (one upsert per rule per batch), so a retried batch
    counts once; read by the rules API and admin for the 24 h and 7 d figures.
    """

    rule_id = models.CharField(max_length=255)
    hour = models.DateTimeField()
    alerts = models.PositiveIntegerField(default=0)
    events = models.PositiveBigIntegerField(default=0)
    last_hit = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rule_id", "hour"], name="rule_hit_rule_hour"),
        ]
        indexes = [models.Index(fields=["hour"], name="rule_hit_hour_idx")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.hour:%Y-%m-%d %H}h"
