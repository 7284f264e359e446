"""The dashboard statistics of SPEC.md, computed with a handful of indexed queries.

Used by `GET /api/v1/dashboard/statistics/` and by the dashboard updater task, so both always
agree. The result is exactly the `data` of the `statistics` message.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from agents.models import Agent, AgentStatus
from alerts.models import Alert, AlertStatus
from events.models import SecurityEvent
from incidents.models import Incident, IncidentStatus
from realtime.messages import iso
from siem.choices import Severity


def compute_statistics(now=None) -> dict:
    """1. events of the last 24 h by event time: total, last hour, severity >= high, and
       "AI attacks" (AI score above AI_NOTIFY_THRESHOLD) — one aggregate query;
    2. alerts: status `new`, and open ones at severity critical — one query;
    3. incidents not closed — one query;
    4. agents by status — one query.
    """
    now = now or timezone.now()
    day_ago, hour_ago = now - timedelta(hours=24), now - timedelta(hours=1)
    events = SecurityEvent.objects.filter(timestamp__gte=day_ago, timestamp__lte=now).aggregate(
        total_24h=Count("pk"),
        last_hour=Count("pk", filter=Q(timestamp__gte=hour_ago)),
        high_severity=Count("pk", filter=Q(severity__gte=Severity.HIGH)),
        ai_attacks=Count("pk", filter=Q(ai_score__gt=settings.AI_NOTIFY_THRESHOLD)),
    )
    alerts = Alert.objects.filter(is_open=True).aggregate(
        new=Count("pk", filter=Q(status=AlertStatus.NEW)),
        critical=Count("pk", filter=Q(severity=Severity.CRITICAL)),
    )
    incidents = {"open": Incident.objects.exclude(status=IncidentStatus.CLOSED).count()}
    agents = Agent.objects.aggregate(
        online=Count("pk", filter=Q(status=AgentStatus.ONLINE)),
        offline=Count("pk", filter=Q(status=AgentStatus.OFFLINE)),
        total=Count("pk"),
    )
    return {
        "events": events,
        "alerts": alerts,
        "incidents": incidents,
        "agents": agents,
        "updated_at": iso(now),
    }
