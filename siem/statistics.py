"""The dashboard statistics of SPEC.md, computed with a handful of indexed queries, none of
which grows with the number of events (the event figures come from per-minute rollups).

Used by `GET /api/v1/dashboard/statistics/` and by the dashboard updater task, so both always
agree. The result is exactly the `data` of the `statistics` message.
"""

from __future__ import annotations

from django.db.models import Count, Q
from django.utils import timezone

from agents.models import Agent, AgentStatus
from alerts.models import Alert, AlertStatus
from events.rollups import event_counts
from incidents.models import Incident, IncidentStatus
from realtime.messages import iso
from siem.choices import Severity


def compute_statistics(now=None) -> dict:
    """1. events of the last 24 h by event time (the 1,440 whole UTC minutes ending with the
       current one): total, last hour (60 minutes), severity >= high, and "AI attacks" (AI score
       above AI_NOTIFY_THRESHOLD) — summed from the per-minute rollups (events/rollups.py);
    2. alerts: status `new`, and open ones at severity critical — one query;
    3. incidents not closed — one query;
    4. agents by status — one query.
    """
    now = now or timezone.now()
    events = event_counts(now)
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
