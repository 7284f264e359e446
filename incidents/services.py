"""Incident writes: create, update, escalate, close — atomic, audited, broadcast after commit."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alerts.services import _resolve_user
from incidents.models import Incident, IncidentActivity, IncidentStatus
from integrations import services as notify
from realtime.manager import get_connection_manager
from siem.activity import actor_label, actor_user
from siem.errors import InvalidTransition

TRANSITIONS: dict[str, set[str]] = {
    IncidentStatus.OPEN: {
        IncidentStatus.INVESTIGATING,
        IncidentStatus.ESCALATED,
        IncidentStatus.CLOSED,
    },
    IncidentStatus.INVESTIGATING: {
        IncidentStatus.OPEN,
        IncidentStatus.ESCALATED,
        IncidentStatus.CLOSED,
    },
    # Escalating an escalated incident raises its level again.
    IncidentStatus.ESCALATED: {
        IncidentStatus.INVESTIGATING,
        IncidentStatus.ESCALATED,
        IncidentStatus.CLOSED,
    },
    IncidentStatus.CLOSED: {IncidentStatus.OPEN},
}


def _check(incident: Incident, target: str) -> None:
    if target not in TRANSITIONS.get(incident.status, set()):
        reason = "it is closed" if incident.status == IncidentStatus.CLOSED else ""
        raise InvalidTransition("incident", incident.incident_id, incident.status, target, reason)


def _log(incident: Incident, actor, action: str, from_status: str = "", note: str = "") -> None:
    IncidentActivity.objects.create(
        incident=incident,
        actor=actor_user(actor),
        actor_name=actor_label(actor),
        action=action,
        from_status=from_status,
        to_status=incident.status,
        note=note,
    )


def _locked(incident: Incident) -> Incident:
    # No select_related here: PostgreSQL refuses FOR UPDATE on the nullable side of an outer
    # join (assigned_to), and FOR UPDATE OF is not portable to every backend we support.
    return Incident.objects.select_for_update().get(pk=incident.pk)


def create_incident(
    *,
    title: str,
    severity: int,
    description: str = "",
    alerts: Iterable = (),
    assigned_to=None,
    actor=None,
) -> Incident:
    now = timezone.now()
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title,
            severity=severity,
            description=description,
            assigned_to=_resolve_user(assigned_to),
            created_by=actor_user(actor),
            created_at=now,
            updated_at=now,
        )
        alerts = list(alerts)
        if alerts:
            incident.alerts.add(*alerts)
        _log(incident, actor, "created")
        get_connection_manager().broadcast_incident(incident, action="created")
        # Notifications out (integrations): after commit, so a rolled-back write sends nothing.
        transaction.on_commit(partial(notify.on_incident_created, incident.pk), robust=True)
    return incident


def escalate_incident(incident: Incident, *, actor, reason: str = "") -> Incident:
    with transaction.atomic():
        incident = _locked(incident)
        _check(incident, IncidentStatus.ESCALATED)
        previous = incident.status
        incident.status = IncidentStatus.ESCALATED
        incident.escalation_level += 1
        incident.updated_at = timezone.now()
        incident.save(update_fields=["status", "escalation_level", "updated_at"])
        _log(incident, actor, "escalated", previous, note=reason)
        get_connection_manager().broadcast_incident(incident, action="escalated")
        transaction.on_commit(
            partial(notify.on_incident_escalated, incident.pk, incident.escalation_level),
            robust=True,
        )
    return incident


def update_incident(
    incident: Incident, *, actor, alerts: Iterable | None = None, **changes
) -> Incident:
    editable = {"title", "description", "severity", "status", "assigned_to"}
    unknown = set(changes) - editable
    if unknown:
        raise ValidationError({name: "this field cannot be changed" for name in sorted(unknown)})
    target = changes.get("status")
    if target == IncidentStatus.CLOSED:
        changes.pop("status")
    with transaction.atomic():
        incident = _locked(incident)
        previous = incident.status
        if target == IncidentStatus.ESCALATED and previous != IncidentStatus.ESCALATED:
            changes.pop("status")
            incident = escalate_incident(incident, actor=actor)
        elif target and target not in (previous, IncidentStatus.CLOSED):
            _check(incident, target)
            if target == IncidentStatus.OPEN:
                incident.closed_at = None
        if "assigned_to" in changes:
            changes["assigned_to"] = _resolve_user(changes["assigned_to"])
        if changes or alerts is not None:
            for name, value in changes.items():
                setattr(incident, name, value)
            incident.updated_at = timezone.now()
            incident.save()
            if alerts is not None:
                incident.alerts.set(list(alerts))
            changed = sorted(changes) + (["alerts"] if alerts is not None else [])
            _log(incident, actor, "updated", previous, note=", ".join(changed))
            get_connection_manager().broadcast_incident(incident, action="updated")
        if target == IncidentStatus.CLOSED:
            incident = close_incident(incident, actor=actor)
    return incident


def close_incident(incident: Incident, *, actor, resolution: str = "") -> Incident:
    with transaction.atomic():
        incident = _locked(incident)
        _check(incident, IncidentStatus.CLOSED)
        previous = incident.status
        incident.status = IncidentStatus.CLOSED
        incident.resolution = resolution
        incident.closed_at = incident.updated_at = timezone.now()
        incident.save(update_fields=["status", "resolution", "closed_at", "updated_at"])
        _log(incident, actor, "closed", previous, note=resolution)
        get_connection_manager().broadcast_incident(incident, action="closed")
    return incident
