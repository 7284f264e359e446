"""Value sets shared by several apps (severity is the same 1–5 scale everywhere)."""

from __future__ import annotations

from django.db import models


class Severity(models.IntegerChoices):
    INFO = 1, "info"
    LOW = 2, "low"
    MEDIUM = 3, "medium"
    HIGH = 4, "high"
    CRITICAL = 5, "critical"
