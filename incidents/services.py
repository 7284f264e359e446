"""Incident writes: create, update, escalate, close, add alerts, comment, tasks, observables —
atomic, in the timeline, broadcast after commit."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alerts.models import OPEN_STATUSES
from alerts.services import _resolve_user, log_incident_link, resolve_alert
from incidents.models import (
    Incident,
    IncidentActivity,
    IncidentComment,
    IncidentObservable,
    IncidentStatus,
    IncidentTask,
    TaskStatus,
)
from integrations import services as notify
from realtime.manager import get_connection_manager
from realtime.messages import comment_data
from siem.activity import actor_label, actor_user
from siem.errors import InvalidTransition
from siem.timeline import log_entry, write_comment

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
    log_entry(
        IncidentActivity,
        incident=incident,
        actor=actor,
        action=action,
        status=incident.status,
        from_status=from_status,
        note=note,
    )


def _ids(alerts: Iterable) -> str:
    return ", ".join(f"#{alert.pk}" for alert in sorted(alerts, key=lambda a: a.pk))


def _link_alerts(incident: Incident, actor, alerts: list, *, action: str) -> None:
    """Replace the incident's alerts; its timeline and each alert's say which came and went."""
    before = {alert.pk: alert for alert in incident.alerts.all()}
    after = {alert.pk: alert for alert in alerts}
    added = [alert for pk, alert in after.items() if pk not in before]
    removed = [alert for pk, alert in before.items() if pk not in after]
    if removed:
        incident.alerts.remove(*removed)
        log_incident_link(removed, actor=actor, incident_id=incident.pk, added=False)
        _log(incident, actor, action, incident.status, note=f"alerts removed: {_ids(removed)}")
    if added:
        incident.alerts.add(*added)
        log_incident_link(added, actor=actor, incident_id=incident.pk, added=True)
        _log(incident, actor, action, incident.status, note=f"alerts added: {_ids(added)}")


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
        _log(incident, actor, "created")
        alerts = list(alerts)
        if alerts:
            _link_alerts(incident, actor, alerts, action="alerts")
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
            if changes:
                _log(incident, actor, "updated", previous, note=_describe(changes))
            if alerts is not None:
                _link_alerts(incident, actor, list(alerts), action="alerts")
            get_connection_manager().broadcast_incident(incident, action="updated")
        if target == IncidentStatus.CLOSED:
            incident = close_incident(incident, actor=actor)
    return incident


def _describe(changes: dict) -> str:
    """`title, assigned_to → alice`: which fields changed, and to whom it is assigned."""
    parts = []
    for name in sorted(changes):
        if name == "assigned_to":
            parts.append(f"assigned to {actor_label(changes[name], 'nobody')}")
        elif name == "status":
            parts.append(f"status → {changes[name]}")
        else:
            parts.append(name)
    return ", ".join(parts)


def close_incident(
    incident: Incident, *, actor, resolution: str = "", resolve_alerts: bool = False
) -> Incident:
    """Close the case; with `resolve_alerts`, its open alerts are resolved with the same
    resolution, each with its own timeline row and broadcast (all or nothing)."""
    with transaction.atomic():
        incident = _locked(incident)
        _check(incident, IncidentStatus.CLOSED)
        previous = incident.status
        incident.status = IncidentStatus.CLOSED
        incident.resolution = resolution
        incident.closed_at = incident.updated_at = timezone.now()
        incident.save(update_fields=["status", "resolution", "closed_at", "updated_at"])
        resolved = []
        if resolve_alerts:
            for alert in incident.alerts.filter(status__in=OPEN_STATUSES).order_by("pk"):
                resolved.append(resolve_alert(alert, actor=actor, resolution=resolution))
        note = resolution
        if resolved:
            note = f"{resolution} (alerts resolved: {_ids(resolved)})".strip()
        _log(incident, actor, "closed", previous, note=note)
        get_connection_manager().broadcast_incident(incident, action="closed")
    return incident


def add_alerts(incident: Incident, *, actor, alerts: Iterable) -> Incident:
    """Add alerts to the case (keeping the ones it has); logged with which, broadcast."""
    with transaction.atomic():
        incident = _locked(incident)
        current = list(incident.alerts.all())
        known = {alert.pk for alert in current}
        new = [alert for alert in alerts if alert.pk not in known]
        if new:
            _link_alerts(incident, actor, current + new, action="alerts")
            _touch(incident)
            get_connection_manager().broadcast_incident(incident, action="updated")
    return incident


def _touch(incident: Incident) -> None:
    incident.updated_at = timezone.now()
    incident.save(update_fields=["updated_at"])


def add_comment(incident: Incident, *, actor, text: str) -> IncidentComment:
    """A comment on the case, in its timeline, broadcast as `commented`."""
    with transaction.atomic():
        incident = _locked(incident)
        comment = write_comment(IncidentComment, incident=incident, actor=actor, text=text)
        _log(incident, actor, "commented", incident.status, note=text)
        data = comment_data(comment, "incident_id", incident.incident_id)
        get_connection_manager().broadcast_incident(data, action="commented")
    return comment


def add_task(incident: Incident, *, actor, title: str, assigned_to=None) -> IncidentTask:
    """A task of the case; the timeline says who added it and for whom; broadcast `updated`."""
    user = _resolve_user(assigned_to)
    with transaction.atomic():
        incident = _locked(incident)
        task = IncidentTask.objects.create(incident=incident, title=title, assigned_to=user)
        note = f"{title}" + (f" (assigned to {actor_label(user)})" if user else "")
        _log(incident, actor, "task added", incident.status, note=note)
        _touch(incident)
        get_connection_manager().broadcast_incident(incident, action="updated")
    return task


def update_task(task: IncidentTask, *, actor, **changes) -> IncidentTask:
    """Change a task's status (open/done), assignee or title; logged on its incident."""
    unknown = set(changes) - {"status", "assigned_to", "title"}
    if unknown:
        raise ValidationError({name: "this field cannot be changed" for name in sorted(unknown)})
    if "assigned_to" in changes:
        changes["assigned_to"] = _resolve_user(changes["assigned_to"])
    with transaction.atomic():
        incident = _locked(task.incident)
        task = IncidentTask.objects.select_for_update().get(pk=task.pk)
        said = []
        for name, value in changes.items():
            if getattr(task, name) == value:
                continue
            setattr(task, name, value)
            if name == "status":
                said.append("done" if value == TaskStatus.DONE else "reopened")
            elif name == "assigned_to":
                said.append(f"assigned to {actor_label(value, 'nobody')}")
            else:
                said.append(f"renamed to {value!r}")
        if said:
            task.updated_at = timezone.now()
            task.save()
            _log(incident, actor, "task", incident.status, note=f"{task.title}: {', '.join(said)}")
            _touch(incident)
            get_connection_manager().broadcast_incident(incident, action="updated")
    return task


def add_observable(incident: Incident, *, actor, kind: str, value: str) -> IncidentObservable:
    """A manual indicator on the case (once per kind and value); logged, broadcast `updated`."""
    with transaction.atomic():
        incident = _locked(incident)
        observable, created = IncidentObservable.objects.get_or_create(
            incident=incident, kind=kind, value=value, defaults={"added_by": actor_user(actor)}
        )
        if created:
            _log(incident, actor, "observable", incident.status, note=f"{kind}: {value}")
            _touch(incident)
            get_connection_manager().broadcast_incident(incident, action="updated")
    return observable
