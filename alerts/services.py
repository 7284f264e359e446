"""Alert writes: create, acknowledge, assign, update, resolve, record a repeat.

Each function is one atomic change with an activity row, broadcast after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from alerts.models import (
    OPEN_STATUSES,
    Alert,
    AlertActivity,
    AlertComment,
    AlertSource,
    AlertStatus,
)
from integrations import services as notify
from realtime.manager import get_connection_manager
from realtime.messages import comment_data
from siem.activity import actor_label, actor_user
from siem.errors import InvalidTransition
from siem.timeline import log_entry, write_comment

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
    log_entry(
        AlertActivity,
        alert=alert,
        actor=actor,
        action=action,
        status=alert.status,
        from_status=from_status,
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
    also_matched: list[dict] | None = None,
) -> Alert:
    """A new alert. With `events`, its occurrence_count is the number of distinct events linked
    (so `GET /alerts/{id}/events/` counts exactly `occurrence_count`). `also_matched`: the other
    rules that detected the same events (detection folds them into this alert)."""
    now = timezone.now()
    events = list(dict.fromkeys(getattr(event, "pk", event) for event in events))
    if events:
        occurrence_count = len(events)
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
            also_matched=merge_also_matched([], also_matched) or [],
        )
        if events:
            _link_events(alert, events)
        _log(alert, actor, "created")
        get_connection_manager().broadcast_alert(alert, action="created")
        # Notifications out (integrations): after commit, so a rolled-back alert sends nothing.
        transaction.on_commit(partial(notify.on_alert_created, alert.pk), robust=True)
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
    **fields,
) -> tuple[Alert, bool]:
    """Create the alert for `dedup_key`, or count a repeat on the open one; (alert, created).

    Several workers may race on the same key: the partial unique index lets exactly one create
    it, and the losers fall back to counting a repeat. `count` is how many occurrences this call
    stands for when it links no events; with `events`, every occurrence is one linked event and
    the count grows by the events not linked before (a re-run of detection over stored events
    counts nothing twice), so the alert's events always number its occurrence_count.
    `first_seen` is the earliest of them. With `dedup_window`, a repeat seen further than that
    from the open alert's [first_seen, last_seen] (event time) opens a new alert: the old one
    stays open as it was, its key suffixed with its id to free the key.
    """
    events = list(events)
    also_matched = fields.pop("also_matched", None)
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
                also_matched=also_matched,
            )
            return repeat, False
        try:
            alert = create_alert(
                dedup_key=dedup_key,
                events=events,
                seen_at=seen_at,
                actor=actor,
                occurrence_count=count,
                first_seen=first_seen,
                also_matched=also_matched,
                **fields,
            )
        except IntegrityError:
            continue
        return alert, True
    raise RuntimeError(f"could not raise or repeat alert {dedup_key!r}")


def raise_or_repeat_many(
    specs: list[dict], *, dedup_window: timedelta | None = None
) -> list[tuple[Alert, bool]]:
    """`raise_or_repeat` for many keys in one transaction (a detection micro-batch).

    The common case, a repeat on an open alert, costs a fixed handful of statements for the whole
    batch instead of several per key: the open alerts of all keys are read and locked in one
    ordered query (key order, so two workers repeating the same alerts never deadlock), the
    links they already have read by one query, their counts and times written by one UPDATE,
    their new event links by one INSERT, and their
    `updated` broadcasts published together after commit. Keys with no open alert, or whose
    open alert is outside `dedup_window`, go through `raise_or_repeat` one by one (they create).
    Each spec holds `raise_or_repeat`'s keyword arguments (dedup_key, events, seen_at,
    first_seen, count and the new alert's fields). Returns (alert, created) in key order.
    """
    specs = sorted(specs, key=lambda spec: spec["dedup_key"])
    results: list[tuple[Alert, bool]] = []
    with transaction.atomic():
        keys = [spec["dedup_key"] for spec in specs]
        open_alerts = {
            alert.dedup_key: alert
            for alert in Alert.objects.select_for_update()
            .filter(dedup_key__in=keys, is_open=True)
            .order_by("dedup_key")
        }
        _attach_assignees(open_alerts.values())
        now = timezone.now()
        repeats: list[tuple[Alert, dict]] = []
        for spec in specs:
            alert = open_alerts.get(spec["dedup_key"])
            if alert is None or _outside(alert, spec.get("seen_at"), dedup_window):
                results.append(raise_or_repeat(**spec, dedup_window=dedup_window))
                continue
            repeats.append((alert, spec))
            results.append((alert, False))
        fresh = _unlinked([(alert, spec.get("events", ())) for alert, spec in repeats])
        repeated: list[Alert] = []
        links: list[tuple[Alert, list]] = []
        widened: list[Alert] = []
        for (alert, spec), new_ids in zip(repeats, fresh, strict=True):
            count = len(new_ids) if spec.get("events") else spec.get("count", 1)
            if new_ids:
                links.append((alert, new_ids))
            _count_repeat(alert, spec.get("seen_at"), count, spec.get("first_seen"), now)
            merged = merge_also_matched(alert.also_matched, spec.get("also_matched"))
            if merged is not None:
                alert.also_matched = merged
                widened.append(alert)
            repeated.append(alert)
        for alert in widened:  # rare: a rule folded into this alert for the first time
            Alert.objects.filter(pk=alert.pk).update(also_matched=alert.also_matched)
        if repeated:
            _write_repeats(repeated)
            _link_events_many(links)
            get_connection_manager().broadcast_alerts(repeated, action="updated")
    return results


REPEAT_FIELDS = ["occurrence_count", "first_seen", "last_seen", "updated_at"]
# Event ids kept per rule folded into an alert (the alert's own links hold them all).
MAX_ALSO_MATCHED_EVENTS = 1000


def merge_also_matched(current: list[dict], new: list[dict] | None) -> list[dict] | None:
    """`current` with the rules and event ids of `new` added; None when nothing changes."""
    if not new:
        return None
    merged = {entry["id"]: dict(entry) for entry in current}
    changed = False
    for entry in new:
        known = merged.get(entry["id"])
        if known is None:
            known = merged[entry["id"]] = {**entry, "event_ids": []}
            changed = True
        ids = list(dict.fromkeys([*known.get("event_ids", []), *entry.get("event_ids", [])]))
        ids = ids[:MAX_ALSO_MATCHED_EVENTS]
        if ids != known.get("event_ids"):
            known["event_ids"] = ids
            changed = True
    return list(merged.values()) if changed else None


def _write_repeats(alerts: list[Alert]) -> None:
    """One UPDATE for the repeats' counts and times (locked rows, so nothing changed them)."""
    if connection.vendor != "postgresql":
        Alert.objects.bulk_update(alerts, REPEAT_FIELDS)
        return
    # bulk_update's CASE expressions cost ~0.5 ms of Python per row; unnest() costs nothing.
    qn = connection.ops.quote_name
    column = {name: qn(Alert._meta.get_field(name).column) for name in REPEAT_FIELDS}
    # Identifiers from the model, quoted; every value is a parameter.
    statement = (
        f"UPDATE {qn(Alert._meta.db_table)} AS a SET"  # noqa: S608
        f" {column['occurrence_count']} = v.occurrence_count,"
        f" {column['first_seen']} = v.first_seen, {column['last_seen']} = v.last_seen,"
        f" {column['updated_at']} = v.updated_at"
        " FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[], %s::timestamptz[],"
        " %s::timestamptz[]) AS v(pk, occurrence_count, first_seen, last_seen, updated_at)"
        f" WHERE a.{qn(Alert._meta.pk.column)} = v.pk"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            statement,
            [
                [alert.pk for alert in alerts],
                [alert.occurrence_count for alert in alerts],
                [alert.first_seen for alert in alerts],
                [alert.last_seen for alert in alerts],
                [alert.updated_at for alert in alerts],
            ],
        )


def _count_repeat(alert: Alert, seen_at, count: int, first_seen, now) -> None:
    alert.occurrence_count += count
    seen = seen_at or now
    if seen > alert.last_seen:
        alert.last_seen = seen
    earliest = min(seen, first_seen or seen)
    if earliest < alert.first_seen:  # out-of-order events (imports) widen the span backwards
        alert.first_seen = earliest
    alert.updated_at = now


def _attach_assignees(alerts: Iterable[Alert]) -> None:
    """Fill `assigned_to` of locked alerts with one query (the broadcast names the assignee)."""
    alerts = [alert for alert in alerts if alert.assigned_to_id is not None]
    if alerts:
        users = get_user_model().objects.in_bulk({alert.assigned_to_id for alert in alerts})
        for alert in alerts:
            alert.assigned_to = users.get(alert.assigned_to_id)


def _unlinked(links: list[tuple[Alert, Iterable]]) -> list[list[int]]:
    """For each (alert, events), the distinct event ids not yet linked to it (one query)."""
    wanted = [
        (alert, list(dict.fromkeys(getattr(e, "pk", e) for e in events))) for alert, events in links
    ]
    ids = {event_id for _alert, event_ids in wanted for event_id in event_ids}
    if not ids:
        return [[] for _ in wanted]
    through = Alert.events.through
    linked = set(
        through.objects.filter(
            alert_id__in={alert.pk for alert, _ids in wanted}, securityevent_id__in=ids
        ).values_list("alert_id", "securityevent_id")
    )
    return [[i for i in event_ids if (alert.pk, i) not in linked] for alert, event_ids in wanted]


def _link_events(alert: Alert, events: list) -> None:
    _link_events_many([(alert, events)])


def _link_events_many(links: list[tuple[Alert, list]]) -> None:
    """Link events (objects or ids); a bulk insert that skips links already there, where the
    database can (a detection burst links hundreds of events per repeat)."""
    if not connection.features.supports_ignore_conflicts:
        for alert, events in links:
            alert.events.add(*events)
        return
    through = Alert.events.through
    rows = [
        through(alert_id=alert.pk, securityevent_id=event_id)
        for alert, events in links
        for event_id in dict.fromkeys(getattr(event, "pk", event) for event in events)
    ]
    if rows:
        through.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


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
    also_matched: list[dict] | None = None,
) -> Alert:
    """A repeat of the same detection: bump count and last_seen, broadcast `updated`.

    With `events`, the count grows by the events not linked to the alert before."""
    with transaction.atomic():
        alert = _locked(alert)
        events = list(events)
        (new_ids,) = _unlinked([(alert, events)])
        if events:
            count = len(new_ids)
        _count_repeat(alert, seen_at, count, first_seen, timezone.now())
        merged = merge_also_matched(alert.also_matched, also_matched)
        if merged is not None:
            alert.also_matched = merged
        alert.save(update_fields=[*REPEAT_FIELDS, *(["also_matched"] if merged else [])])
        if new_ids:
            _link_events(alert, new_ids)
        get_connection_manager().broadcast_alert(alert, action="updated")
    return alert


def acknowledge_alert(alert: Alert, *, actor, assigned_to=None) -> Alert:
    with transaction.atomic():
        alert = _locked(alert)
        _check(alert, AlertStatus.ACKNOWLEDGED)
        previous = alert.status
        alert.status = AlertStatus.ACKNOWLEDGED
        # Acknowledging never takes an alert away from its assignee: only an explicit
        # `assigned_to` reassigns; an unassigned alert goes to the one who acknowledges it.
        current = alert.assigned_to
        chosen = _resolve_user(assigned_to)
        alert.assigned_to = chosen or current or actor_user(actor)
        alert.acknowledged_at = alert.updated_at = timezone.now()
        alert.save(update_fields=["status", "assigned_to", "acknowledged_at", "updated_at"])
        assignee = actor_label(alert.assigned_to, "nobody")
        if current is not None and alert.assigned_to == current:
            note = f"kept assigned to {assignee}"
        elif current is not None:
            note = f"reassigned from {actor_label(current)} to {assignee}"
        else:
            note = f"assigned to {assignee}"
        _log(alert, actor, "acknowledged", previous, note=note)
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


def add_comment(alert: Alert, *, actor, text: str) -> AlertComment:
    """A comment on the alert, in its timeline, broadcast as `commented`."""
    with transaction.atomic():
        alert = _locked(alert)
        comment = write_comment(AlertComment, alert=alert, actor=actor, text=text)
        _log(alert, actor, "commented", alert.status, note=text)
        data = comment_data(comment, "alert_id", alert.alert_id)
        get_connection_manager().broadcast_alert(data, action="commented")
    return comment


def log_incident_link(alerts: Iterable[Alert], *, actor, incident_id: int, added: bool) -> None:
    """Each alert's timeline says it joined (or left) an incident (alerts show their cases)."""
    verb = "added to" if added else "removed from"
    AlertActivity.objects.bulk_create(
        AlertActivity(
            alert=alert,
            actor=actor_user(actor),
            actor_name=actor_label(actor),
            action="incident",
            from_status=alert.status,
            to_status=alert.status,
            note=f"{verb} incident #{incident_id}",
        )
        for alert in alerts
    )
