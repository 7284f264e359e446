# ruff: noqa: F811 - pytest fixtures imported from tests.integrations_fixtures are parameters
"""Notifications out: routing, payloads, signing, retries, digests, against loopback servers.

The webhook, Slack and Telegram endpoints are a real HTTP server on 127.0.0.1 and e-mail goes to
a real aiosmtpd server; nothing of httpx or smtplib is mocked. Tasks run in this process
through `task_queue` (tests/integrations_fixtures.py).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from alerts.services import create_alert, raise_or_repeat
from events.models import SecurityEvent
from incidents.services import create_incident, escalate_incident
from integrations import services
from integrations.models import Delivery, DeliveryStatus, Integration
from siem import redis as siem_redis
from tests.integrations_fixtures import (  # noqa: F401 (fixtures)
    BOT_TOKEN,
    SECRET,
    integration_settings,
    mailbox,
    receiver,
    task_queue,
)

pytestmark = pytest.mark.django_db


def webhook(receiver, path="/hook", **fields) -> Integration:
    return services.create_integration(
        actor=None,
        name=fields.pop("name", f"hook{path}"),
        kind="webhook",
        target=f"{receiver.base}{path}",
        secret=SECRET,
        **fields,
    )


def raise_alert(capture, **fields):
    """Create an alert as ingestion does: the notification hook runs once it has committed."""
    defaults = {"title": "Multiple failed login attempts", "severity": 4, "category": "brute_force"}
    with capture(execute=True):
        return create_alert(**{**defaults, "hostname": "WS-001", **fields})


def attempts(integration) -> list[tuple[int, str, int | None]]:
    rows = Delivery.objects.filter(integration=integration).order_by("created_at", "id")
    return [(d.attempt, d.status, d.http_status) for d in rows]


def test_an_alert_reaches_a_signed_webhook_with_the_websocket_data(
    integration_settings,
    receiver,
    task_queue,
    broadcasts,
    django_capture_on_commit_callbacks,
):
    integration = webhook(receiver)
    event = SecurityEvent.objects.create(
        computer="WS-001",
        event_code=4625,
        severity=3,
        message="An account failed to log on",
        source_type="Windows Security",
        user_name="jdoe",
        source_ip="10.0.0.7",
    )
    alert = raise_alert(
        django_capture_on_commit_callbacks, events=[event], mitre_techniques=["T1110.001"]
    )
    assert task_queue.names() == ["route"]
    task_queue.run()

    (request,) = receiver.to("/hook")
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-SIEM-Signature"] == f"sha256={expected}"
    assert request.headers["Content-Type"] == "application/json"
    ws_message = next(m for _group, m in broadcasts if m["type"] == "alert")
    assert request.json() == {
        "type": "alert",
        "action": "created",
        "data": ws_message["data"],
        "url": f"https://siem.example.test/alerts/{alert.alert_id}/",
    }
    (delivery,) = Delivery.objects.filter(integration=integration)
    assert (delivery.status, delivery.http_status, delivery.attempt) == ("sent", 200, 1)
    assert delivery.alert_id == alert.alert_id and delivery.duration_ms is not None
    assert delivery.summary["users"] == ["jdoe"] and delivery.summary["ips"] == ["10.0.0.7"]
    assert delivery.summary["attack"] == ["T1110.001"]


def test_only_alerts_at_or_above_min_severity_in_the_categories_are_sent(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    webhook(receiver, min_severity=4, categories=["brute_force"])
    raise_alert(django_capture_on_commit_callbacks, severity=3)
    assert task_queue.names() == []  # nothing could match: not even a task is queued
    raise_alert(django_capture_on_commit_callbacks, severity=5, category="malware")
    raise_alert(django_capture_on_commit_callbacks, severity=4, title="Brute force on DC-01")
    task_queue.run()
    assert [r.json()["data"]["title"] for r in receiver.to("/hook")] == ["Brute force on DC-01"]


def test_a_disabled_integration_gets_nothing(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    webhook(receiver, enabled=False)
    raise_alert(django_capture_on_commit_callbacks, severity=5)
    assert task_queue.names() == []


def test_a_rolled_back_alert_notifies_nobody(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    webhook(receiver)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            create_alert(title="never committed", severity=5, category="x")
            raise RuntimeError("the ingestion batch failed")
    assert task_queue.names() == []


def test_a_500_is_retried_with_exponential_backoff_until_it_succeeds(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration = webhook(receiver)
    receiver.script("/hook", [500, 503, 200])
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    assert attempts(integration) == [(1, "retrying", 500), (2, "retrying", 503), (3, "sent", 200)]
    retries = [countdown for name, _args, countdown in task_queue.ran if name == "deliver"]
    assert retries == [0, 10.0, 20.0]  # first attempt at once, then base × 2^(n-1)
    bodies = [r.body for r in receiver.to("/hook")]
    assert len(set(bodies)) == 1  # the same message, signed the same way, every attempt


def test_a_400_is_not_retried(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration = webhook(receiver)
    receiver.script("/hook", [400])
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    assert attempts(integration) == [(1, "failed", 400)]
    assert len(receiver.to("/hook")) == 1
    assert Delivery.objects.get(integration=integration).error.startswith("HTTP 400")


def test_a_hanging_endpoint_times_out_is_retried_then_given_up(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration = webhook(receiver)
    receiver.script("/hook", ["hang"])
    integration_settings.INTEGRATION_MAX_ATTEMPTS = 2
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    assert attempts(integration) == [(1, "retrying", None), (2, "failed", None)]
    errors = set(Delivery.objects.filter(integration=integration).values_list("error", flat=True))
    assert errors == {"timeout (ReadTimeout)"}
    assert len(receiver.to("/hook")) == 2


def test_a_refused_connection_is_retried(
    integration_settings, task_queue, django_capture_on_commit_callbacks
):
    integration = services.create_integration(
        actor=None, name="down", kind="webhook", target="http://127.0.0.1:9/", secret=SECRET
    )
    integration_settings.INTEGRATION_MAX_ATTEMPTS = 2
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    assert attempts(integration) == [(1, "retrying", None), (2, "failed", None)]
    assert Delivery.objects.filter(error="connection error (ConnectError)").count() == 2


def test_a_failing_integration_does_not_hold_up_a_healthy_one(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    broken = webhook(receiver, "/broken", name="broken")
    healthy = webhook(receiver, "/healthy", name="healthy")
    receiver.script("/broken", ["hang"])
    raise_alert(django_capture_on_commit_callbacks, severity=5)
    # One deliver task per integration: the hung one occupies its own task only.
    task_queue.run(count=1)
    assert task_queue.names() == ["deliver", "deliver"]
    task_queue.run()
    assert attempts(healthy) == [(1, "sent", 200)]
    assert [status for _a, status, _c in attempts(broken)] == ["retrying", "retrying", "failed"]


def test_a_deduplicated_alert_notifies_once_however_often_it_repeats(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    webhook(receiver)
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            alert, _created = raise_or_repeat(
                dedup_key="brute:WS-001",
                title="Brute force",
                severity=5,
                category="brute_force",
                hostname="WS-001",
            )
    task_queue.run()
    alert.refresh_from_db()
    assert alert.occurrence_count == 5
    assert len(receiver.to("/hook")) == 1


def test_routing_and_delivering_twice_sends_once(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    webhook(receiver)
    alert = raise_alert(django_capture_on_commit_callbacks)
    task_queue.put("route", ["alert", alert.alert_id, "created", None])  # a redelivered task
    task_queue.run()
    (delivery,) = Delivery.objects.all()
    task_queue.put("deliver", [delivery.pk])
    task_queue.run()
    assert len(receiver.to("/hook")) == 1


def test_a_flood_past_the_rate_limit_goes_out_as_one_digest(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration_settings.INTEGRATION_RATE_PER_MIN = 5
    integration = webhook(receiver)
    for number in range(30):
        raise_alert(django_capture_on_commit_callbacks, title=f"Flood {number}", severity=4)
    task_queue.run()

    bodies = [r.json() for r in receiver.to("/hook")]
    assert [b["type"] for b in bodies] == ["alert"] * 5 + ["digest"]
    digest = bodies[-1]
    assert digest["data"]["count"] == 25
    assert {a["title"] for a in digest["data"]["alerts"]} == {f"Flood {n}" for n in range(5, 30)}
    # The digest was booked once, for the end of the window.
    (booked,) = [item for item in task_queue.ran if item[0] == "send_digest"]
    assert 0 < booked[2] <= 3601
    rows = Delivery.objects.filter(integration=integration)
    assert rows.filter(status=DeliveryStatus.DIGESTED).count() == 25
    carrier = rows.get(kind="digest")
    assert carrier.status == "sent" and carrier.digested.count() == 25
    # Running the digest again finds nothing left to send.
    task_queue.put("send_digest", booked[1])
    task_queue.run()
    assert len(receiver.to("/hook")) == 6


def test_incidents_created_and_escalated_reach_slack_in_incoming_webhook_format(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    services.create_integration(
        actor=None, name="slack", kind="slack", target=f"{receiver.base}/slack", min_severity=3
    )
    alert = raise_alert(
        django_capture_on_commit_callbacks, severity=2, mitre_techniques=["attack.t1003.006"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        incident = create_incident(title="DCSync from WS-001", severity=5, alerts=[alert])
    with django_capture_on_commit_callbacks(execute=True):
        escalate_incident(incident, actor=None, reason="domain admin at risk")
    with django_capture_on_commit_callbacks(execute=True):
        escalate_incident(incident, actor=None, reason="again")
    task_queue.run()

    bodies = [r.json() for r in receiver.to("/slack")]
    assert len(bodies) == 3  # the severity-2 alert is below min_severity
    first = bodies[0]
    assert first["text"].startswith(f"[CRITICAL] Incident #{incident.incident_id} created:")
    assert f"https://siem.example.test/incidents/{incident.incident_id}/" in first["text"]
    section = first["blocks"][0]["text"]["text"]
    assert "*Host:* WS-001" in section and "*ATT&CK:* T1003.006" in section
    fields = {f["title"]: f["value"] for f in first["attachments"][0]["fields"]}
    assert fields["Host"] == "WS-001" and fields["ATT&CK"] == "T1003.006"
    assert [b["text"].split(":")[0] for b in bodies[1:]] == [
        f"[CRITICAL] Incident #{incident.incident_id} escalated"
    ] * 2


def test_telegram_gets_send_message_and_the_bot_token_is_never_logged(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks, caplog
):
    integration_settings.TELEGRAM_API_BASE = receiver.base
    integration = services.create_integration(
        actor=None, name="tg", kind="telegram", target="-1001234567890"
    )
    path = f"/bot{BOT_TOKEN}/sendMessage"
    receiver.script(path, [502, 200])
    caplog.set_level(logging.DEBUG)
    raise_alert(django_capture_on_commit_callbacks, severity=5, title="Mimikatz <sekurlsa>")
    task_queue.run()

    requests = receiver.to(path)
    assert len(requests) == 2
    body = requests[-1].json()
    assert body["chat_id"] == "-1001234567890" and body["parse_mode"] == "HTML"
    assert "Mimikatz &lt;sekurlsa&gt;" in body["text"] and "Host: WS-001" in body["text"]
    assert attempts(integration) == [(1, "retrying", 502), (2, "sent", 200)]
    assert "HTTP Request: POST" in caplog.text  # httpx did log the request line…
    assert BOT_TOKEN not in caplog.text  # …with the token redacted
    assert BOT_TOKEN.split(":")[1] not in caplog.text
    assert not Delivery.objects.filter(error__contains=BOT_TOKEN.split(":")[1]).exists()


def test_telegram_without_a_bot_token_fails_without_retrying(
    integration_settings, task_queue, django_capture_on_commit_callbacks
):
    integration_settings.TELEGRAM_BOT_TOKEN = ""
    integration = services.create_integration(
        actor=None, name="tg", kind="telegram", target="@soc_channel"
    )
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    assert attempts(integration) == [(1, "failed", None)]
    assert Delivery.objects.get().error == "TELEGRAM_BOT_TOKEN is not set"


def test_email_goes_through_smtp_as_plain_text_and_html(
    integration_settings, mailbox, task_queue, django_capture_on_commit_callbacks
):
    integration_settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    integration_settings.EMAIL_HOST = "127.0.0.1"
    integration_settings.EMAIL_PORT = mailbox.port
    integration_settings.DEFAULT_FROM_EMAIL = "siem@example.test"
    integration = services.create_integration(
        actor=None, name="soc mail", kind="email", target="soc@example.test, oncall@example.test"
    )
    alert = raise_alert(django_capture_on_commit_callbacks, severity=5, mitre_techniques=["T1110"])
    task_queue.run()

    (mail,) = mailbox.messages
    assert mailbox.envelopes == [("siem@example.test", ["soc@example.test", "oncall@example.test"])]
    assert mail["Subject"] == (
        f"[CRITICAL] Alert #{alert.alert_id} created: Multiple failed login attempts"
    )
    plain = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for text in (plain, html):
        assert "WS-001" in text and "T1110" in text
        assert f"https://siem.example.test/alerts/{alert.alert_id}/" in text
    assert "<table>" in html
    assert attempts(integration) == [(1, "sent", None)]


def test_the_secret_never_reaches_a_log_line_or_the_delivery_log(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.DEBUG)
    integration = webhook(receiver)
    receiver.script("/hook", [500, 400])
    raise_alert(django_capture_on_commit_callbacks)
    task_queue.run()
    services.update_integration(integration, actor="admin", secret=SECRET + "-rotated")
    assert "Integration 'hook/hook': alert:" in caplog.text  # deliveries are logged…
    assert SECRET not in caplog.text  # …never the secret
    for row in Delivery.objects.values("error", "body", "summary"):
        assert SECRET not in str(row)


def test_an_integration_busy_with_a_hung_attempt_gets_no_second_worker_slot(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration = webhook(receiver)
    raise_alert(django_capture_on_commit_callbacks, title="first")
    raise_alert(django_capture_on_commit_callbacks, title="second")
    task_queue.run(count=2)  # both routed
    pending = list(Delivery.objects.filter(integration=integration).order_by("id"))
    # Another worker is sending the first one (its slot is taken in Redis, as `deliver` takes it).
    release = services._acquire_slot(integration.pk, integration.created_at, pending[0].pk)
    assert release is not None
    assert (
        services._acquire_slot(integration.pk, integration.created_at, pending[1].pk) is None
    )  # one slot (the setting)
    task_queue.pending = [("deliver", [pending[1].pk], 0)]
    task_queue.run(count=1)
    assert receiver.to("/hook") == []
    # It waits in the integration's line, with a re-check a minute later in case the hand-off
    # is lost; nothing polls meanwhile.
    assert task_queue.pending == [("deliver", [pending[1].pk, 1], services.WAITING_RECHECK_SEC)]
    task_queue.pending.clear()
    # Once the first attempt has finished, its slot goes to the next in line at once.
    release()
    assert task_queue.pending == [("deliver", [pending[1].pk], 0)]
    task_queue.run()
    assert [r.json()["data"]["title"] for r in receiver.to("/hook")] == ["second"]


def test_a_slot_held_by_a_worker_that_died_lapses(integration_settings, receiver, settings):
    integration = webhook(receiver)
    settings.INTEGRATION_TIMEOUT_SEC = 1
    held = services._acquire_slot(integration.pk, integration.created_at, 1)  # never released
    assert held is not None
    assert services._acquire_slot(integration.pk, integration.created_at, 2) is None
    key = services._slots_key(integration.pk, integration.created_at)
    # Its claim lapses after 2 timeouts + 10 s; pretend that time has passed.
    siem_redis.client().zadd(key, {"1": 0})
    release = services._acquire_slot(integration.pk, integration.created_at, 2)
    assert release is not None
    release()


def test_in_a_flood_the_write_path_queues_nothing_for_alerts_only_a_digest_will_carry(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    integration_settings.INTEGRATION_RATE_PER_MIN = 3
    integration = webhook(receiver, min_severity=4)
    for number in range(3):  # 3 messages go out
        raise_alert(django_capture_on_commit_callbacks, title=f"Spray {number}")
        task_queue.run()
    raise_alert(django_capture_on_commit_callbacks, title="Spray 3")
    # The first alert past the limit books the window's digest (in the write path, and again
    # when its route records it as digested; the second digest run finds nothing left).
    assert task_queue.names() == ["send_digest", "route"]
    task_queue.pending.reverse()
    task_queue.run(count=1)
    assert task_queue.names() == ["send_digest", "send_digest"]
    for number in range(4, 40):
        raise_alert(django_capture_on_commit_callbacks, title=f"Spray {number}")
    raise_alert(django_capture_on_commit_callbacks, title="too low", severity=2)
    assert task_queue.names() == ["send_digest", "send_digest"]  # nothing more was queued
    task_queue.run()

    bodies = [r.json() for r in receiver.to("/hook")]
    assert [b["type"] for b in bodies] == ["alert"] * 3 + ["digest"]
    assert bodies[-1]["data"]["count"] == 37
    titles = {a["title"] for a in bodies[-1]["data"]["alerts"]}
    assert titles == {f"Spray {n}" for n in range(3, 40)}
    rows = Delivery.objects.filter(integration=integration, kind="alert")
    assert rows.filter(status="digested", digest__isnull=False).count() == 37
    # A late route task of a digested alert finds it already carried.
    late = rows.filter(status="digested").order_by("-id").first()
    task_queue.put("route", ["alert", late.alert_id, "created", None])
    task_queue.run()
    assert len(receiver.to("/hook")) == 4


def test_the_sweep_routes_what_a_stopped_process_never_queued(
    integration_settings, receiver, task_queue, django_capture_on_commit_callbacks
):
    from alerts.models import Alert
    from incidents.models import Incident

    integration_settings.INTEGRATION_RATE_WINDOW_SEC = 60
    integration = webhook(receiver)
    now = timezone.now()
    Integration.objects.filter(pk=integration.pk).update(updated_at=now - timedelta(minutes=10))
    routed = raise_alert(django_capture_on_commit_callbacks, title="routed as usual")
    task_queue.run()
    # Stored, then the process died before its after-commit hook queued anything.
    with django_capture_on_commit_callbacks(execute=False):
        lost = create_alert(title="lost hook", severity=4, category="brute_force", hostname="WS-2")
        recent = create_alert(title="recent", severity=4, category="brute_force", hostname="WS-3")
        lost_incident = create_incident(title="lost incident", severity=4)
    minutes_ago = now - timedelta(minutes=3)
    Alert.objects.filter(pk__in=[routed.pk, lost.pk]).update(created_at=minutes_ago)
    Incident.objects.filter(pk=lost_incident.pk).update(created_at=minutes_ago)
    # `recent` is younger than a rate window: its window's digest may still carry it.
    Alert.objects.filter(pk=recent.pk).update(created_at=now - timedelta(seconds=30))

    assert services.sweep_unrouted() == (1, 1)
    task_queue.run()
    titles = [r.json()["data"]["title"] for r in receiver.to("/hook")]
    assert titles == ["routed as usual", "lost hook", "lost incident"]
    assert services.sweep_unrouted() == (0, 0)  # routed once, never again
