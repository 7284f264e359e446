"""Integration writes, routing and delivery.

Flow of one alert (numbers are where the code is):
1. `alerts.services.create_alert` schedules `on_alert_created(alert_id)` with
   `transaction.on_commit`; it costs the write path two small queries, a Redis INCR per
   matching integration (the flood count) and at most one Celery publish.
2. The `route` task (`route()`) builds the message once — the webhook body with the same `data`
   as the WebSocket message, and the facts chat and e-mail show — and, per matching integration
   under that integration's row lock, either records a pending first attempt or, past
   INTEGRATION_RATE_PER_MIN in the current window, a `digested` row and (once per window) a
   digest task for the window's end. A message already routed to an integration is skipped,
   so running `route` twice sends nothing twice.
3. One `deliver` task per integration × message (`deliver()`) claims the attempt with a
   conditional UPDATE, sends it (integrations.senders), records the outcome, and on a
   retryable failure adds the next attempt, delayed by an exponential backoff.
A slow or failing endpoint therefore holds only its own deliver task: never the write, the
detection, nor another integration's messages.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import transaction
from django.db.models import CharField, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from integrations import messages, senders
from integrations.models import (
    Delivery,
    DeliveryStatus,
    Integration,
    IntegrationKind,
    MessageKind,
)
from realtime.messages import iso
from siem import redis as siem_redis

logger = logging.getLogger("integrations")

EDITABLE = ("name", "kind", "target", "min_severity", "categories", "enabled", "secret")
_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
_INTRANET_SUFFIXES = (".local", ".lan", ".internal", ".intranet", ".corp", ".home.arpa")


# --- validation (shared by the API serializer, the admin form and the services) ----------------
def validate_target(kind: str, target: str) -> str:
    """The cleaned target for `kind`, or ValidationError({"target": reason})."""
    target = (target or "").strip()
    if not target:
        raise ValidationError({"target": "This field may not be blank."})
    if kind in (IntegrationKind.WEBHOOK, IntegrationKind.SLACK):
        _validate_url(target)
    elif kind == IntegrationKind.TELEGRAM:
        if not _CHAT_ID.match(target):
            raise ValidationError(
                {"target": "a Telegram chat id: a number (e.g. -1001234567890) or @channelname"}
            )
    elif kind == IntegrationKind.EMAIL:
        addresses = [a.strip() for a in target.split(",") if a.strip()]
        validator = EmailValidator()
        for address in addresses:
            try:
                validator(address)
            except ValidationError:
                raise ValidationError({"target": f"{address!r} is not an e-mail address"}) from None
        target = ", ".join(addresses)
    return target


def _validate_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError({"target": "an http(s):// URL with a host name"})
    if parts.scheme == "http" and not _is_intranet(parts.hostname):
        raise ValidationError(
            {"target": "use https:// (plain http:// only for loopback or intranet hosts)"}
        )


def _is_intranet(host: str) -> bool:
    """Loopback, private or link-local addresses, `localhost`, single-label names and the
    usual internal suffixes: where an operator may reasonably run a plain-HTTP receiver."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        host = host.lower().rstrip(".")
        return host == "localhost" or "." not in host or host.endswith(_INTRANET_SUFFIXES)
    return address.is_loopback or address.is_private or address.is_link_local


def validate_categories(categories) -> list[str]:
    if categories in (None, ""):
        return []
    if not isinstance(categories, list) or not all(
        isinstance(c, str) and c.strip() and len(c) <= 64 for c in categories
    ):
        raise ValidationError({"categories": "a list of category names (at most 64 characters)"})
    return list(dict.fromkeys(c.strip() for c in categories))


def _clean(fields: dict, instance: Integration | None = None) -> dict:
    kind = fields.get("kind", instance.kind if instance else None)
    if kind not in IntegrationKind.values:
        raise ValidationError({"kind": f"one of {', '.join(IntegrationKind.values)}"})
    if "target" in fields or "kind" in fields:
        fields["target"] = validate_target(
            kind, fields.get("target", instance.target if instance else "")
        )
    if "categories" in fields:
        fields["categories"] = validate_categories(fields["categories"])
    severity = fields.get("min_severity")
    if severity is not None and not (isinstance(severity, int) and 1 <= severity <= 5):
        raise ValidationError({"min_severity": "an integer from 1 (info) to 5 (critical)"})
    secret = fields.get("secret", instance.secret if instance else "")
    if kind == IntegrationKind.WEBHOOK and not secret:
        raise ValidationError({"secret": "webhooks are signed: set a secret"})
    return fields


# --- integration writes ------------------------------------------------------------------------
def create_integration(*, actor, **fields) -> Integration:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValidationError({name: "unknown field" for name in sorted(unknown)})
    fields = _clean(dict(fields))
    with transaction.atomic():
        integration = Integration(**fields)
        integration.full_clean()
        integration.save()
    logger.info("Integration %r (%s) created by %s", integration.name, integration.kind, actor)
    return integration


def update_integration(integration: Integration, *, actor, **changes) -> Integration:
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationError({name: "this field cannot be changed" for name in sorted(unknown)})
    if changes.get("secret") == "":
        changes.pop("secret")  # empty means "keep": the current secret is never shown to edit
    changes = _clean(dict(changes), integration)
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration.pk)
        for name, value in changes.items():
            setattr(integration, name, value)
        integration.updated_at = timezone.now()
        integration.full_clean()
        integration.save()
    logger.info(
        "Integration %r updated by %s (%s)",
        integration.name,
        actor,
        ", ".join(sorted(changes)) or "no change",
    )
    return integration


def delete_integration(integration: Integration, *, actor) -> None:
    name = integration.name
    integration.delete()
    logger.info("Integration %r deleted by %s", name, actor)


def send_test(integration: Integration, *, actor) -> Delivery:
    """Queue a test message to one integration; the delivery log shows how it went."""
    body, summary = messages.for_test(integration)
    with transaction.atomic():
        delivery = Delivery.objects.create(
            integration=integration,
            kind=MessageKind.TEST,
            action="test",
            message_key=f"test:{timezone.now().timestamp():.6f}",
            body=body,
            summary=summary,
        )
        _dispatch("deliver", [delivery.pk])
    logger.info("Test message to integration %r queued by %s", integration.name, actor)
    return delivery


# --- hooks: called once the alert or incident write has committed ------------------------------
def on_alert_created(alert_id: int) -> None:
    """Post-commit hook of `alerts.services.create_alert` (repeats never come here).

    In a flood, an alert that only a digest will carry needs no task of its own: once every
    matching integration has had INTEGRATION_RATE_PER_MIN + 1 alerts queued in this window,
    nothing is queued, and the window's digest (booked here by the first alert past the
    limit) finds the alert in the alerts table (`flush_digest`).
    """
    try:
        if _alert_needs_routing(alert_id):
            _enqueue("route", ["alert", alert_id, "created", None])
    except Exception:  # never into the caller: its write has committed
        logger.exception("Could not queue notifications for alert %s", alert_id)


def _alert_needs_routing(alert_id: int) -> bool:
    """True if a matching integration still takes this alert individually in this window, or
    it is the one past the limit whose route books the digest.

    Counted in Redis as the alerts are committed (INCR per integration and window), not from
    the delivery log: when the worker lags behind a flood, the log lags too, and counting
    there would queue a task for every alert of the flood.
    """
    from alerts.models import Alert

    alert = Alert.objects.filter(pk=alert_id).values("severity", "category").first()
    if alert is None:
        return False
    matching = [
        (pk, created_at)
        for pk, created_at, categories in Integration.objects.filter(
            enabled=True, min_severity__lte=alert["severity"]
        ).values_list("pk", "created_at", "categories")
        if not categories or alert["category"] in categories
    ]
    if not matching:
        return False
    limit = settings.INTEGRATION_RATE_PER_MIN + 1
    now = timezone.now()
    start_ts, _start, end = _window(now)
    counts = _count_admissions(matching, start_ts)
    for (pk, _created_at), count in zip(matching, counts, strict=False):
        if count == limit:  # exactly one alert per window and integration sees this count
            countdown = (end - now).total_seconds() + 1
            _enqueue("send_digest", [pk, start_ts], countdown=countdown)
    return any(count <= limit for count in counts)


def _count_admissions(integrations: list[tuple[int, datetime]], start_ts: int) -> list[int]:
    ttl = 2 * settings.INTEGRATION_RATE_WINDOW_SEC
    try:
        pipe = siem_redis.client().pipeline(transaction=False)
        for pk, created_at in integrations:
            # created_at in the key: a re-created integration (same id) starts from zero.
            key = siem_redis.key("integrations", pk, f"{created_at.timestamp():.6f}")
            pipe.incr(f"{key}:{start_ts}")
            pipe.expire(f"{key}:{start_ts}", ttl)
        return pipe.execute()[0::2]
    except redis.RedisError as exc:
        # Fail open: the route task counts exactly in the database anyway.
        logger.warning("Integrations rate counter unavailable (%r); routing every alert", exc)
        return [0] * len(integrations)


def on_incident_created(incident_id: int) -> None:
    """Post-commit hook of `incidents.services.create_incident`."""
    _incident_hook(incident_id, "created")


def on_incident_escalated(incident_id: int, escalation_level: int) -> None:
    """Post-commit hook of `incidents.services.escalate_incident`; each level notifies once."""
    _incident_hook(incident_id, "escalated", escalation_level)


def _incident_hook(incident_id: int, action: str, revision: int | None = None) -> None:
    from incidents.models import Incident

    severity = Incident.objects.filter(pk=incident_id).values("severity")[:1]
    _route_later("incident", incident_id, action, severity, revision)


def _route_later(kind: str, object_id: int, action: str, severity, revision=None) -> None:
    # Never raise into the caller: its write has committed, and a notification problem must not
    # turn a stored alert into an error answer.
    try:
        if Integration.objects.filter(enabled=True, min_severity__lte=Subquery(severity)).exists():
            _enqueue("route", [kind, object_id, action, revision])
    except Exception:
        logger.exception("Could not queue notifications for %s %s", kind, object_id)


# --- routing -----------------------------------------------------------------------------------
def route(kind: str, object_id: int, action: str, revision: int | None = None) -> list[int]:
    """Route one alert or incident message to every matching integration; the new delivery ids.

    `revision` tells repeated actions apart (an incident escalated to level 2, then 3)."""
    from alerts.models import Alert
    from incidents.models import Incident

    if kind == MessageKind.ALERT:
        obj = Alert.objects.select_related("assigned_to").filter(pk=object_id).first()
        if obj is None:
            return []
        body, summary = messages.for_alert(obj, action)
        key = f"alert:{object_id}:{action}"
    else:
        obj = Incident.objects.select_related("assigned_to").filter(pk=object_id).first()
        if obj is None:
            return []
        body, summary = messages.for_incident(obj, action)
        key = f"incident:{object_id}:{action}" + ("" if revision is None else f":{revision}")
    created = []
    for integration in _matching(kind, obj):
        try:
            delivery = _admit(integration.pk, kind, action, key, obj, body, summary)
        except Exception:  # one integration's trouble never stops the others
            logger.exception("Routing %s to integration %r failed", key, integration.name)
            continue
        if delivery is not None:
            created.append(delivery.pk)
    return created


def _matching(kind: str, obj) -> list[Integration]:
    candidates = Integration.objects.filter(enabled=True, min_severity__lte=obj.severity)
    if kind != MessageKind.ALERT:
        return list(candidates)  # incidents have no category
    return [i for i in candidates if not i.categories or obj.category in i.categories]


def _window(now: datetime) -> tuple[int, datetime, datetime]:
    size = settings.INTEGRATION_RATE_WINDOW_SEC
    start_ts = int(now.timestamp()) // size * size
    start = datetime.fromtimestamp(start_ts, UTC)
    return start_ts, start, start + timedelta(seconds=size)


def _admit(integration_id, kind, action, key, obj, body, summary) -> Delivery | None:
    """Record the first attempt (pending, or digested past the rate limit) under the
    integration's row lock, so concurrent routes count the window exactly."""
    with transaction.atomic():
        integration = Integration.objects.select_for_update().get(pk=integration_id)
        if Delivery.objects.filter(integration=integration, message_key=key, attempt=1).exists():
            return None  # routed before (a task that ran twice)
        status = DeliveryStatus.PENDING
        now = timezone.now()
        if kind == MessageKind.ALERT:
            start_ts, start, end = _window(now)
            window = Delivery.objects.filter(
                integration=integration, kind=MessageKind.ALERT, attempt=1, created_at__gte=start
            )
            if window.exclude(status=DeliveryStatus.DIGESTED).count() >= (
                settings.INTEGRATION_RATE_PER_MIN
            ):
                status = DeliveryStatus.DIGESTED
                waiting = window.filter(status=DeliveryStatus.DIGESTED, digest__isnull=True)
                if not waiting.exists():  # the first one over the limit books the digest
                    countdown = max((end - now).total_seconds(), 0) + 1
                    _dispatch("send_digest", [integration.pk, start_ts], countdown=countdown)
        delivery = Delivery.objects.create(
            integration=integration,
            kind=kind,
            action=action,
            alert=obj if kind == MessageKind.ALERT else None,
            incident=obj if kind == MessageKind.INCIDENT else None,
            message_key=key,
            status=status,
            body=body,
            summary=summary,
            created_at=now,
        )
        if status == DeliveryStatus.PENDING:
            _dispatch("deliver", [delivery.pk])
    return delivery


def flush_digest(integration_id: int, window_start_ts: int) -> Delivery | None:
    """Send what a flood pushed past the rate limit up to the end of that window, as one
    message: the alerts routed as `digested`, and the matching alerts the write path did not
    even queue (`on_alert_created`), found in the alerts table. Each gets a `digested` row
    pointing to the digest, so running it twice, or a late route task, sends nothing twice."""

    size = settings.INTEGRATION_RATE_WINDOW_SEC
    start = datetime.fromtimestamp(window_start_ts, UTC)
    end = start + timedelta(seconds=size)
    with transaction.atomic():
        integration = Integration.objects.select_for_update().filter(pk=integration_id).first()
        if integration is None:
            return None
        waiting = Delivery.objects.filter(
            integration=integration,
            status=DeliveryStatus.DIGESTED,
            digest__isnull=True,
            created_at__lt=end,
        ).order_by("id")
        rows = list(waiting.values_list("pk", "summary"))
        # From the previous window on (stragglers), but never from before the integration
        # existed or was last changed (it was not routing those alerts).
        since = max(start - timedelta(seconds=size), integration.updated_at)
        unrouted = _unrouted_alerts(integration, since, end)
        if not rows and not unrouted:
            return None
        summaries = [s for _pk, s in rows] + [messages.brief(a) for a in unrouted]
        body, summary = messages.for_digest(summaries, iso(start), iso(end))
        digest = Delivery.objects.create(
            integration=integration,
            kind=MessageKind.DIGEST,
            action="digest",
            message_key=f"digest:{window_start_ts}",
            body=body,
            summary=summary,
        )
        Delivery.objects.filter(pk__in=[pk for pk, _s in rows]).update(digest=digest)
        Delivery.objects.bulk_create(
            Delivery(
                integration=integration,
                kind=MessageKind.ALERT,
                action="created",
                alert=alert,
                message_key=f"alert:{alert.alert_id}:created",
                status=DeliveryStatus.DIGESTED,
                summary=summary_,
                digest=digest,
            )
            for alert, summary_ in zip(unrouted, summaries[len(rows) :], strict=True)
        )
        _dispatch("deliver", [digest.pk])
    logger.info(
        "Integration %r: %d alert(s) past the rate limit sent as one digest",
        integration.name,
        len(summaries),
    )
    return digest


def _unrouted_alerts(integration: Integration, since: datetime, until: datetime) -> list:
    """Alerts created in [since, until) that match the integration and have no delivery row."""
    from alerts.models import Alert

    alerts = Alert.objects.filter(
        created_at__gte=since, created_at__lt=until, severity__gte=integration.min_severity
    )
    if integration.categories:
        alerts = alerts.filter(category__in=integration.categories)
    routed = Delivery.objects.filter(
        integration=integration, attempt=1, alert_id=OuterRef("pk"), kind=MessageKind.ALERT
    )
    return list(alerts.exclude(Exists(routed)).order_by("alert_id"))


# --- the sweep: what a stopped process never queued -----------------------------------------------
# How far back the sweep looks for alerts and incidents nobody routed.
SWEEP_LOOKBACK_SEC = 15 * 60


def sweep_unrouted(now: datetime | None = None) -> tuple[int, int]:
    """Route the alerts and incidents created in the last SWEEP_LOOKBACK_SEC that match an
    integration and have no delivery row for it; (alerts, incidents) routed.

    The write path queues a route task only after its transaction commits (`on_alert_created`);
    a process killed between the two leaves a stored alert that nobody was told about. Beat
    runs this every minute (`integrations-sweep`). It leaves alone what a rate window may
    still carry in its digest: only alerts older than one window and a minute are swept, by
    when their window's digest has run. Routing is idempotent, so a race with a late hook or
    digest sends nothing twice.
    """
    now = now or timezone.now()
    until = now - timedelta(seconds=settings.INTEGRATION_RATE_WINDOW_SEC + 60)
    floor = now - timedelta(seconds=SWEEP_LOOKBACK_SEC)
    alert_ids: set[int] = set()
    incident_ids: set[int] = set()
    for integration in Integration.objects.filter(enabled=True):
        since = max(floor, integration.updated_at)
        if since >= until:
            continue
        alert_ids.update(a.pk for a in _unrouted_alerts(integration, since, until))
        incident_ids.update(_unrouted_incidents(integration, since, until))
    for pk in sorted(alert_ids):
        _enqueue("route", [MessageKind.ALERT, pk, "created", None])
    for pk in sorted(incident_ids):
        _enqueue("route", [MessageKind.INCIDENT, pk, "created", None])
    if alert_ids or incident_ids:
        logger.warning(
            "Notifications sweep: %d alert(s) and %d incident(s) had not been routed "
            "(a process stopped before queueing them); routing them now",
            len(alert_ids),
            len(incident_ids),
        )
    return len(alert_ids), len(incident_ids)


def _unrouted_incidents(integration: Integration, since: datetime, until: datetime) -> list[int]:
    from incidents.models import Incident

    routed = Delivery.objects.filter(
        integration=integration,
        attempt=1,
        kind=MessageKind.INCIDENT,
        message_key=Concat(
            Value("incident:"), Cast(OuterRef("pk"), CharField()), Value(":created")
        ),
    )
    incidents = Incident.objects.filter(
        created_at__gte=since, created_at__lt=until, severity__gte=integration.min_severity
    )
    return list(incidents.exclude(Exists(routed)).values_list("pk", flat=True))


# --- delivery ----------------------------------------------------------------------------------
def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: base × 2^(attempt-1)."""
    return float(settings.INTEGRATION_RETRY_BACKOFF_SEC * 2 ** (attempt - 1))


def deliver(delivery_id: int, waited: int = 0) -> Delivery | None:
    """Send one attempt; None if another worker has it, it is done, or it has to wait.

    At most INTEGRATION_MAX_IN_FLIGHT attempts of one integration are in progress at once,
    counted atomically in Redis (`_acquire_slot`). An attempt that finds its integration's
    slots taken joins the integration's waiting line instead of taking another worker slot,
    and the attempt that frees a slot queues the next in line at once: a dead endpoint holds
    at most that many worker slots (each for at most INTEGRATION_TIMEOUT_SEC per attempt) and
    works through its backlog one attempt at a time, while the other slots stay free for the
    other integrations and tasks. Nothing polls; a safety re-check a minute later (`waited`
    counts them) covers a hand-off lost with a killed worker.
    """
    now = timezone.now()
    # A claim older than a few timeouts belongs to a worker that died mid-send.
    stale = now - timedelta(seconds=3 * settings.INTEGRATION_TIMEOUT_SEC + 30)
    row = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).values_list(
        "integration_id", "integration__created_at"
    )
    if not row:
        return None
    slot = _acquire_slot(*row[0], delivery_id)
    if slot is None:
        _enqueue("deliver", [delivery_id, waited + 1], countdown=WAITING_RECHECK_SEC)
        return None
    try:
        return _claim_and_send(delivery_id, now, stale)
    finally:
        slot()


def _claim_and_send(delivery_id: int, now: datetime, stale: datetime) -> Delivery | None:
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
        .filter(Q(started_at__isnull=True) | Q(started_at__lt=stale))
        .update(started_at=now)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("integration").get(pk=delivery_id)
    integration = delivery.integration
    if not integration.enabled and delivery.kind != MessageKind.TEST:
        outcome = senders.Outcome(False, error="integration disabled")
    else:
        outcome = senders.send(integration, delivery.body, delivery.summary)
    last = delivery.attempt >= settings.INTEGRATION_MAX_ATTEMPTS
    if outcome.ok:
        delivery.status = DeliveryStatus.SENT
    elif outcome.retryable and not last:
        delivery.status = DeliveryStatus.RETRYING
    else:
        delivery.status = DeliveryStatus.FAILED
    delivery.http_status = outcome.http_status
    delivery.error = outcome.error
    delivery.duration_ms = outcome.duration_ms
    delivery.finished_at = timezone.now()
    with transaction.atomic():
        delivery.save(
            update_fields=["status", "http_status", "error", "duration_ms", "finished_at"]
        )
        if delivery.status == DeliveryStatus.RETRYING:
            retry = Delivery.objects.create(
                integration=integration,
                kind=delivery.kind,
                action=delivery.action,
                alert_id=delivery.alert_id,
                incident_id=delivery.incident_id,
                message_key=delivery.message_key,
                attempt=delivery.attempt + 1,
                body=delivery.body,
                summary=delivery.summary,
            )
            _dispatch("deliver", [retry.pk], countdown=backoff(delivery.attempt))
    log = logger.info if outcome.ok else logger.warning
    log(
        "Integration %r: %s attempt %d %s%s (%d ms)",
        integration.name,
        delivery.message_key,
        delivery.attempt,
        delivery.status,
        f": {outcome.error}" if outcome.error else "",
        outcome.duration_ms,
    )
    return delivery


# --- per-integration slots -----------------------------------------------------------------------
# How long an attempt in an integration's waiting line trusts the hand-off before it checks again.
WAITING_RECHECK_SEC = 60

# KEYS[1]: the integration's attempts in progress (a sorted set scored by when each claim lapses,
# so a worker killed mid-send frees its slot then); KEYS[2]: its waiting line.
# ARGV: now, lapse, attempt id, limit. 1 = this attempt may send; 0 = it joined the line.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ttl = math.ceil((ARGV[2] - ARGV[1]) * 1000) + 60000 * 10
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  redis.call('LREM', KEYS[2], 0, ARGV[3])
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('LREM', KEYS[2], 0, ARGV[3])
return 1
"""
# Frees the slot of ARGV[1] and hands it to the first in line (its id, or false).
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('LPOP', KEYS[2])
"""


def _slots_key(integration_id: int, created_at: datetime) -> str:
    # created_at in the key: a re-created integration (same id) starts with free slots.
    return siem_redis.key("integrations", integration_id, f"{created_at.timestamp():.6f}", "busy")


def _acquire_slot(integration_id: int, created_at: datetime, delivery_id: int):
    """A release function if this attempt may send now; None if the integration already has
    INTEGRATION_MAX_IN_FLIGHT attempts in progress (the attempt is then in its waiting line,
    and the release of a slot queues it). Fails open when Redis is unreachable (then nothing
    bounds a dead endpoint's slots, and the log says so)."""
    busy = _slots_key(integration_id, created_at)
    keys = [busy, f"{busy}:line"]
    member = str(delivery_id)
    now = time.time()
    lapse = now + 2 * settings.INTEGRATION_TIMEOUT_SEC + 10
    client = siem_redis.client()
    try:
        taken = client.register_script(_ACQUIRE)(
            keys=keys, args=[now, lapse, member, settings.INTEGRATION_MAX_IN_FLIGHT]
        )
    except redis.RedisError as exc:
        logger.warning("Integration slots unavailable (%r); sending without a bound", exc)
        return lambda: None
    if not taken:
        return None

    def release() -> None:
        try:
            following = client.register_script(_RELEASE)(keys=keys, args=[member])
        except redis.RedisError:
            return  # the claim lapses on its own; the line's attempts re-check later
        if following is not None:
            _enqueue("deliver", [int(following)])

    return release


# --- Celery plumbing ---------------------------------------------------------------------------
def _dispatch(task: str, args: list, countdown: float = 0) -> None:
    """Queue a task once the current transaction commits (the rows it reads are visible)."""
    transaction.on_commit(lambda: _enqueue(task, args, countdown), robust=True)


def _enqueue(task: str, args: list, countdown: float = 0) -> None:
    from integrations import tasks

    try:
        getattr(tasks, task).apply_async(args, countdown=countdown or None)
    except Exception:
        logger.exception("Could not queue integrations task %s%r", task, args)
