"""Alert writes: create, acknowledge, assign, update, resolve, record a repeat.

Each function is one atomic change with an activity row, broadcast after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from alerts.models import OPEN_STATUSES, Alert, AlertActivity, AlertSource, AlertStatus
from realtime.manager import get_connection_manager
from siem.activity import actor_label, actor_user
from siem.errors import InvalidTransition

# Allowed status changes; resolved and false_positive may be reopened (to `new`).
TRANSITIONS: dict[str, set[str]] = {
    AlertStatus.NEW: {
        AlertStatus.ACKNOWLEDGED,
        AlertStatus.INVESTIGATING,
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
    },
    AlertStatus.ACKNOWLEDGED: {
        AlertStatus.INVESTIGATING,
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
    },
    AlertStatus.INVESTIGATING: {
        AlertStatus.ACKNOWLEDGED,
        AlertStatus.RESOLVED,
        AlertStatus.FALSE_POSITIVE,
    },
    AlertStatus.RESOLVED: {AlertStatus.NEW},
    AlertStatus.FALSE_POSITIVE: {AlertStatus.NEW},
}


def _check(alert: Alert, target: str) -> None:
    if target not in TRANSITIONS.get(alert.status, set()):
        reason = "it is already closed" if alert.status not in OPEN_STATUSES else ""
        raise InvalidTransition("alert", alert.alert_id, alert.status, target, reason)


def _log(alert: Alert, actor, action: str, from_status: str = "", note: str = "") -> None:
    AlertActivity.objects.create(
        alert=alert,
        actor=actor_user(actor),
        actor_name=actor_label(actor),
        action=action,
        from_status=from_status,
        to_status=alert.status,
        note=note,
    )


def _locked(alert: Alert) -> Alert:
    """Re-read the alert under a row lock so concurrent triage serializes."""
    # No select_related here: PostgreSQL refuses FOR UPDATE on the nullable side of an outer
    # join (assigned_to), and FOR UPDATE OF is not portable to every backend we support.
    return Alert.objects.select_for_update().get(pk=alert.pk)


def _resolve_user(user_or_name):
    if user_or_name is None or not isinstance(user_or_name, str):
        return user_or_name
    User = get_user_model()
    try:
        return User.objects.get(**{User.USERNAME_FIELD: user_or_name}, is_active=True)
    except User.DoesNotExist:
        raise ValidationError(
            {"assigned_to": f"unknown or inactive user {user_or_name!r}"}
        ) from None


def create_alert(
    *,
    title: str,
    severity: int,
    category: str,
    hostname: str = "",
    description: str = "",
    events: Iterable = (),
    source: str = AlertSource.MANUAL,
    rule_id: str = "",
    mitre_techniques: Iterable[str] = (),
    dedup_key: str = "",
    seen_at: datetime | None = None,
    actor=None,
    occurrence_count: int = 1,
    first_seen: datetime | None = None,
) -> Alert:
    now = timezone.now()
    with transaction.atomic():
        alert = Alert.objects.create(
            title=title,
            severity=severity,
            category=category,
            hostname=hostname,
            description=description,
            source=source,
            rule_id=rule_id,
            mitre_techniques=list(mitre_techniques),
            dedup_key=dedup_key,
            created_by=actor_user(actor),
            created_at=now,
            updated_at=now,
            first_seen=first_seen or seen_at or now,
            last_seen=seen_at or now,
            occurrence_count=occurrence_count,
        )
        events = list(events)
        if events:
            _link_events(alert, events)
        _log(alert, actor, "created")
        get_connection_manager().broadcast_alert(alert, action="created")
    return alert


def raise_or_repeat(
    *,
    dedup_key: str,
    events: Iterable = (),
    seen_at: datetime | None = None,
    actor=None,
    count: int = 1,
    dedup_window: timedelta | None = None,
    first_seen: datetime | None = None,
    link_limit: int | None = None,
    **fields,
) -> tuple[Alert, bool]:
    """Create the alert for `dedup_key`, or count a repeat on the open one; (alert, created).

    Several workers may race on the same key: the partial unique index lets exactly one create
    it, and the losers fall back to counting a repeat. `count` is how many occurrences this call
    stands for (a detection batch reports several at once), `first_seen` the earliest of them.
    With `dedup_window`, a repeat seen
    further than that from the open alert's [first_seen, last_seen] (event time) opens a new
    alert: the old one stays open as it was, its key suffixed with its id to free the key.
    `link_limit` caps the events linked to one alert (the count keeps counting).
    """
    events = list(events)
    for _attempt in range(3):
        open_alert = Alert.objects.filter(dedup_key=dedup_key, is_open=True).first()
        if open_alert is not None and _outside(open_alert, seen_at, dedup_window):
            Alert.objects.filter(pk=open_alert.pk, dedup_key=dedup_key).update(
                dedup_key=f"{dedup_key}#{open_alert.pk}"[-255:]
            )
            open_alert = None
        if open_alert is not None:
            repeat = record_repeat(
                open_alert,
                events=events,
                seen_at=seen_at,
                count=count,
                first_seen=first_seen,
                link_limit=link_limit,
            )
            return repeat, False
        try:
            alert = create_alert(
                dedup_key=dedup_key,
                events=events if link_limit is None else events[:link_limit],
                seen_at=seen_at,
                actor=actor,
                occurrence_count=count,
                first_seen=first_seen,
                **fields,
            )
        except IntegrityError:
            continue
        return alert, True
    raise RuntimeError(f"could not raise or repeat alert {dedup_key!r}")


def _link_events(alert: Alert, events: list) -> None:
    """Link events (objects or ids); a bulk insert that skips links already there, where the
    database can (a detection burst links hundreds of events per repeat)."""
    if not connection.features.supports_ignore_conflicts:
        alert.events.add(*events)
        return
    through = Alert.events.through
    ids = dict.fromkeys(getattr(event, "pk", event) for event in events)
    through.objects.bulk_create(
        [through(alert_id=alert.pk, securityevent_id=event_id) for event_id in ids],
        ignore_conflicts=True,
        batch_size=1000,
    )


def _outside(alert: Alert, seen_at: datetime | None, window: timedelta | None) -> bool:
    if window is None or seen_at is None:
        return False
    return seen_at > alert.last_seen + window or seen_at < alert.first_seen - window


def record_repeat(
    alert: Alert,
    *,
    events: Iterable = (),
    seen_at: datetime | None = None,
    count: int = 1,
    first_seen: datetime | None = None,
    link_limit: int | None = None,
) -> Alert:
    """A repeat of the same detection: bump count and last_seen, broadcast `updated`."""
    with transaction.atomic():
        alert = _locked(alert)
        events = list(events)
        if link_limit is not None:  # detection alerts link one event per occurrence
            events = events[: max(link_limit - alert.occurrence_count, 0)]
        alert.occurrence_count += count
        seen = seen_at or timezone.now()
        if seen > alert.last_seen:
            alert.last_seen = seen
        earliest = min(seen, first_seen or seen)
        if earliest < alert.first_seen:  # out-of-order events (imports) widen the span backwards
            alert.first_seen = earliest
        alert.updated_at = timezone.now()
        alert.save(update_fields=["occurrence_count", "first_seen", "last_seen", "updated_at"])
        events = list(events)
        if events:
            _link_events(alert, events)
        get_connection_manager().broadcast_alert(alert, action="updated")
    return alert


def acknowledge_alert(alert: Alert, *, actor, assigned_to=None) -> Alert:
    with transaction.atomic():
        alert = _locked(alert)
        _check(alert, AlertStatus.ACKNOWLEDGED)
        previous = alert.status
        alert.status = AlertStatus.ACKNOWLEDGED
        alert.assigned_to = _resolve_user(assigned_to) or actor_user(actor)
        alert.acknowledged_at = alert.updated_at = timezone.now()
        alert.save(update_fields=["status", "assigned_to", "acknowledged_at", "updated_at"])
        _log(alert, actor, "acknowledged", previous)
        get_connection_manager().broadcast_alert(alert, action="acknowledged")
    return alert


def assign_alert(alert: Alert, *, actor, assigned_to) -> Alert:
    user = _resolve_user(assigned_to)
    with transaction.atomic():
        alert = _locked(alert)
        if alert.status not in OPEN_STATUSES:
            raise InvalidTransition(
                "alert", alert.alert_id, alert.status, "assigned", "it is closed"
            )
        alert.assigned_to = user
        alert.updated_at = timezone.now()
        alert.save(update_fields=["assigned_to", "updated_at"])
        _log(
            alert,
            actor,
            "assigned",
            alert.status,
            note=f"assigned to {actor_label(user, 'nobody')}",
        )
        get_connection_manager().broadcast_alert(alert, action="updated")
    return alert


def update_alert(alert: Alert, *, actor, **changes) -> Alert:
    """Edit fields and/or move to a non-terminal status; resolving goes through resolve_alert."""
    editable = {"title", "description", "severity", "category", "hostname", "status", "assigned_to"}
    unknown = set(changes) - editable
    if unknown:
        raise ValidationError({name: "this field cannot be changed" for name in sorted(unknown)})
    with transaction.atomic():
        alert = _locked(alert)
        previous = alert.status
        target = changes.pop("status", None)
        if target in (AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE):
            return resolve_alert(
                alert, actor=actor, false_positive=target == AlertStatus.FALSE_POSITIVE
            )
        if target == AlertStatus.ACKNOWLEDGED and previous == AlertStatus.NEW:
            return acknowledge_alert(alert, actor=actor, assigned_to=changes.get("assigned_to"))
        if target and target != previous:
            _check(alert, target)
            alert.status = target
            if target == AlertStatus.NEW:
                alert.resolved_at = None
                alert.resolution = ""
            alert.is_open = target in OPEN_STATUSES
        if "assigned_to" in changes:
            changes["assigned_to"] = _resolve_user(changes["assigned_to"])
        for name, value in changes.items():
            setattr(alert, name, value)
        alert.updated_at = timezone.now()
        alert.save()
        _log(alert, actor, "updated", previous, note=", ".join(sorted(changes)) if changes else "")
        get_connection_manager().broadcast_alert(alert, action="updated")
    return alert


def resolve_alert(
    alert: Alert, *, actor, resolution: str = "", false_positive: bool = False
) -> Alert:
    target = AlertStatus.FALSE_POSITIVE if false_positive else AlertStatus.RESOLVED
    with transaction.atomic():
        alert = _locked(alert)
        _check(alert, target)
        previous = alert.status
        alert.status = target
        alert.is_open = False
        alert.resolution = resolution
        alert.resolved_at = alert.updated_at = timezone.now()
        alert.save(update_fields=["status", "is_open", "resolution", "resolved_at", "updated_at"])
        _log(alert, actor, "resolved", previous, note=resolution)
        get_connection_manager().broadcast_alert(alert, action="resolved")
    return alert
