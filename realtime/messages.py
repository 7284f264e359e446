"""The wire envelopes of SPEC.md, in one place.

Every message the server sends is built here from plain values, at the moment of the write, so
a broadcast carries what was committed and fan-out needs no query. Keys never change; extra
keys may be added to `data`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

CHANNELS = ("events", "alerts", "incidents", "agents", "dashboard", "notifications")


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


# --- payloads (the `data` of each message) -----------------------------------------------------
def event_data(event) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "computer": event.computer,
        "severity": event.severity,
        "message": event.message,
        "source_type": event.source_type,
        "event_code": event.event_code,
        "timestamp": iso(event.timestamp),
        "received_at": iso(event.received_at),
        "user_name": event.user_name,
        "source_ip": event.source_ip,
        "agent_id": str(event.agent_id) if event.agent_id else None,
        "ai_score": event.ai_score,
        "ai_category": event.ai_category,
    }


def alert_data(alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "title": alert.title,
        "severity": alert.severity,
        "category": alert.category,
        "hostname": alert.hostname,
        "status": alert.status,
        "description": alert.description,
        "source": alert.source,
        "rule_id": alert.rule_id,
        "mitre_techniques": list(alert.mitre_techniques or []),
        "assigned_to": _username(alert.assigned_to),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "resolution": alert.resolution,
        "occurrence_count": alert.occurrence_count,
        "first_seen": iso(alert.first_seen),
        "last_seen": iso(alert.last_seen),
        "created_at": iso(alert.created_at),
        "updated_at": iso(alert.updated_at),
    }


def incident_data(incident) -> dict[str, Any]:
    return {
        "incident_id": incident.incident_id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "description": incident.description,
        "escalation_level": incident.escalation_level,
        "assigned_to": _username(incident.assigned_to),
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
        "closed_at": iso(incident.closed_at),
        "resolution": incident.resolution,
    }


def comment_data(comment, owner_key: str, owner_id: int) -> dict[str, Any]:
    """A comment on an alert or incident (`owner_key` "alert_id" or "incident_id")."""
    return {
        owner_key: owner_id,
        "comment_id": comment.pk,
        "author": comment.author_name,
        "text": comment.text,
        "created_at": iso(comment.created_at),
    }


def agent_data(agent) -> dict[str, Any]:
    return {
        "agent_id": str(agent.agent_id),
        "hostname": agent.hostname,
        "status": agent.status,
        "last_seen": iso(agent.last_seen),
        "ip_address": agent.ip_address,
        "os": agent.os,
        "version": agent.version,
        "registered_at": iso(agent.registered_at),
    }


def notification_data(event, *, message: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "computer": event.computer,
        "ai_score": int(event.ai_score or 0),
        "ai_category": event.ai_category or "unknown",
        "ai_description": event.ai_description or "",
        "message": message if message is not None else event.message,
    }


# --- envelopes ---------------------------------------------------------------------------------
def envelope(kind: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "action": action, "data": data, "timestamp": now_iso()}


def notification(severity: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "notification", "severity": severity, "data": data, "timestamp": now_iso()}


def connection(channel: str) -> dict[str, Any]:
    return {"type": "connection", "status": "connected", "channel": channel, "timestamp": now_iso()}


def pong() -> dict[str, Any]:
    return {"type": "pong", "timestamp": now_iso()}


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def resync_required(channel: str, since: int, latest: int | None) -> dict[str, Any]:
    """`?since=` reaches further back than the history: reload through the REST API."""
    return {
        "type": "resync_required",
        "channel": channel,
        "since": since,
        "latest": latest,
        "timestamp": now_iso(),
    }
