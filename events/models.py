from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from siem.choices import Severity


class AnalysisStatus(models.TextChoices):
    PENDING = "pending", "pending"
    PROCESSING = "processing", "processing"
    DONE = "done", "analyzed"
    FAILED = "failed", "failed"


class SecurityEvent(models.Model):
    """One security event as received, with the AI analyzer's verdict once it has run."""

    event_id = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(
        default=timezone.now, help_text="When the event happened (event time)."
    )
    received_at = models.DateTimeField(default=timezone.now, help_text="When the server stored it.")
    computer = models.CharField(max_length=255)
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    # The agent's own record id (Windows EventRecordID) so that a retried batch is stored once.
    agent_record_id = models.BigIntegerField(null=True, blank=True)
    event_code = models.IntegerField()
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    message = models.TextField(blank=True)
    source_type = models.CharField(max_length=100, default="Windows Security")
    # Normalized fields most searches and rules need, copied out of `raw` at ingestion.
    user_name = models.CharField(max_length=255, blank=True)
    source_ip = models.CharField(max_length=64, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    # Every value of the event (message, stored fields, each raw value), lowercase, one per line:
    # what hunting's bare words and raw-field terms search (events/query.py, filled at ingest).
    search_text = models.TextField(blank=True, default="", editable=False)

    ai_status = models.CharField(
        max_length=16, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING
    )
    ai_score = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100)]
    )
    ai_category = models.CharField(max_length=64, blank=True)
    ai_description = models.TextField(blank=True)
    ai_attempts = models.PositiveSmallIntegerField(default=0)
    ai_claimed_at = models.DateTimeField(null=True, blank=True)
    ai_analyzed_at = models.DateTimeField(null=True, blank=True)
    ai_provider = models.CharField(max_length=32, blank=True)
    ai_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-timestamp", "-event_id"]
        verbose_name = "security event"
        indexes = [
            models.Index(fields=["timestamp"], name="event_ts_idx"),
            models.Index(fields=["received_at"], name="event_received_idx"),
            models.Index(fields=["computer", "timestamp"], name="event_computer_ts_idx"),
            models.Index(fields=["event_code", "timestamp"], name="event_code_ts_idx"),
            models.Index(fields=["severity", "timestamp"], name="event_severity_ts_idx"),
            models.Index(fields=["ai_status", "event_id"], name="event_ai_queue_idx"),
            models.Index(fields=["ai_score", "timestamp"], name="event_ai_score_ts_idx"),
            # `ai_score_min`, newest first, over the scored events only: the newest events are
            # mostly not scored yet, and walking them all made that list take seconds.
            models.Index(
                fields=["timestamp"],
                condition=Q(ai_score__isnull=False),
                name="event_scored_ts_idx",
            ),
            # The admin's exact search by user or source address (events/admin.py).
            models.Index(fields=["user_name", "timestamp"], name="event_user_ts_idx"),
            models.Index(fields=["source_ip", "timestamp"], name="event_source_ip_ts_idx"),
            # Hunting's `computer:` (case-insensitive); skipped where expression indexes are not
            # supported (SQL Server). Trigram indexes: migration 0003 (PostgreSQL only).
            models.Index(Lower("computer"), "timestamp", name="event_computer_lower_ts_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__gte=1, severity__lte=5), name="event_severity_1_5"
            ),
            models.UniqueConstraint(
                fields=["agent", "agent_record_id"],
                condition=Q(agent__isnull=False, agent_record_id__isnull=False),
                name="event_agent_record_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.event_id} {self.event_code} on {self.computer}"


class PipelineItem(models.Model):
    """Outbox: one registered post-commit step still owed to one stored batch of events.

    Written in the same transaction as the events (`events.pipeline.enqueue`), deleted by whoever
    completes the step. A row outliving its lease (`claimed_until`) belongs to a process that
    crashed or failed; the relay (`events.pipeline.drain`) claims it and does the step again.
    """

    step = models.CharField(max_length=64)
    # Random per batch, never reused (unlike keys, which restart with a new database): the key
    # under which steps make their side effects idempotent across retries.
    batch_key = models.CharField(max_length=32)
    event_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    # Nobody may work on the row before this time: the lease of its holder, or a retry delay.
    claimed_until = models.DateTimeField()
    claim_token = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "pipeline item"
        indexes = [models.Index(fields=["claimed_until", "id"], name="pipeline_due_idx")]

    def __str__(self) -> str:
        return f"{self.step} for {len(self.event_ids)} event(s)"


class EventRollup(models.Model):
    """Per-minute counters of events by event time, maintained at ingestion (events/rollups.py).

    The dashboard statistics sum at most 1,440 minutes × ROLLUP_SHARDS rows instead of counting
    the events of the last 24 hours. `shard` spreads concurrent ingest transactions over several
    rows of the same minute, so that they do not queue on one row lock until they commit.
    """

    minute = models.DateTimeField(help_text="Start of the minute (UTC) of the events' timestamp.")
    shard = models.PositiveSmallIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    high_severity = models.BigIntegerField(default=0)
    ai_attacks = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "event rollup"
        constraints = [
            models.UniqueConstraint(fields=["minute", "shard"], name="event_rollup_minute_shard")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} #{self.shard}: {self.total}"


class SavedSearch(models.Model):
    """A hunting query kept under a name; `shared` ones are listed to every user."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_searches"
    )
    name = models.CharField(max_length=200)
    q = models.TextField(help_text="The query, in the hunting query language.")
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name
