"""Built-in correlation rules: brute force windows in event time, de-duplication, shared state.

Failed logons are generated in the shape of the real 4625 records of ../shared/data (flat
Windows records) and go through the ingestion path: normalize_record → create_events → the
on-commit detection stage → alerts.services. Windows live in real Redis under a key prefix of
this test only. Users: none needed (detection acts as the system).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from accounts.services import issue_access_token
from alerts.detection import detect_events
from alerts.detection.engine import Engine
from alerts.detection.windows import WindowSpec, WindowStore
from alerts.models import Alert, DetectionRule
from events.models import SecurityEvent
from events.normalize import normalize_record
from events.services import create_events
from tests.detection_helpers import forget_windows, fresh_detection
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import open_channel

START = datetime(2019, 3, 18, 11, 0, 0, tzinfo=UTC)  # imports carry old timestamps


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    """Own Redis keys per test (event ids restart with each test database) and no Sigma rules."""
    with fresh_detection(settings, sigma_dir=""):
        yield


def failed_logon(
    second: float, *, account="Administrator", ip="203.0.113.7", host="DC-01", record=None
):
    """A 4625 as the real data has it: lower-case hex, %% tokens, trailing-space process."""
    return {
        "EventID": 4625,
        "Computer": host,
        "Channel": "Security",
        "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "TimeCreated": (START + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
        "EventRecordID": record,
        "Level": 0,
        "SubjectUserSid": "S-1-0-0",
        "TargetUserSid": "S-1-0-0",
        "TargetUserName": account,
        "TargetDomainName": "EXAMPLE",
        "Status": "0xc000006d",
        "FailureReason": "%%2313",
        "SubStatus": "0xc000006a",
        "LogonType": 3,
        "LogonProcessName": "NtLmSsp ",
        "AuthenticationPackageName": "NTLM",
        "WorkstationName": "KALI",
        "IpAddress": ip,
        "IpPort": "49152",
    }


def ingest(records, capture, batch_size=500):
    items = [normalize_record(r) for r in records]
    with capture(execute=True):
        for start in range(0, len(items), batch_size):
            create_events(items[start : start + batch_size])


def brute_force_alerts():
    return list(Alert.objects.filter(rule_id="builtin.brute_force").order_by("alert_id"))


@pytest.mark.django_db
def test_seven_failures_in_the_window_raise_nothing_and_the_eighth_raises_one_alert(
    django_capture_on_commit_callbacks,
):
    ingest([failed_logon(i * 10) for i in range(7)], django_capture_on_commit_callbacks)
    assert brute_force_alerts() == []

    ingest([failed_logon(75)], django_capture_on_commit_callbacks)

    [alert] = brute_force_alerts()
    assert alert.title == "Multiple failed login attempts"
    assert alert.category == "brute_force"
    assert alert.hostname == "DC-01"
    assert alert.source == "rule"
    assert alert.severity == 4
    assert alert.mitre_techniques == ["T1110", "T1110.001"]
    assert alert.occurrence_count == 8
    assert alert.events.count() == 8
    # Event time, not wall clock: the span of the failures that make up the alert.
    assert (alert.first_seen, alert.last_seen) == (START, START + timedelta(seconds=75))
    assert alert.dedup_key == "builtin.brute_force|dc-01|administrator|203.0.113.7"


@pytest.mark.django_db
def test_failed_logins_posted_by_the_api_without_windows_fields_are_grouped_by_host(
    django_capture_on_commit_callbacks,
):
    """The guide's example: plain API events, no raw record, no account, no address."""
    event = {
        "computer": "WS-001",
        "event_code": 4625,
        "severity": 3,
        "message": "Failed login attempt",
        "source_type": "Windows Security",
    }
    with django_capture_on_commit_callbacks(execute=True):
        create_events([event] * 8)
    [alert] = brute_force_alerts()
    assert (alert.title, alert.category, alert.hostname) == (
        "Multiple failed login attempts",
        "brute_force",
        "WS-001",
    )
    assert alert.dedup_key == "builtin.brute_force|ws-001|-|-"


@pytest.mark.django_db
def test_failures_spread_wider_than_the_window_never_fire(django_capture_on_commit_callbacks):
    # 20 failures, one every 35 s: any 240 s window holds at most 7.
    ingest([failed_logon(i * 35) for i in range(20)], django_capture_on_commit_callbacks)
    assert brute_force_alerts() == []


@pytest.mark.django_db
def test_windows_are_per_account_and_source(django_capture_on_commit_callbacks):
    records = [failed_logon(i, account=f"user{i % 4}") for i in range(28)]  # 7 per account
    records += [failed_logon(i, ip=f"198.51.100.{i}") for i in range(10)]  # 1 per source
    ingest(records, django_capture_on_commit_callbacks)
    assert brute_force_alerts() == []


@pytest.mark.django_db(transaction=True)
def test_3561_failed_logons_from_one_attacker_are_one_alert_with_that_count(admin_user):
    """The issue's example, through ingestion in batches of 500, seen by a /ws/alerts client."""
    records = [failed_logon(i * 0.05, record=i) for i in range(3561)]
    items = [normalize_record(r) for r in records]
    token = issue_access_token(admin_user)[0]

    def ingest_in_batches():
        for start in range(0, len(items), 500):
            create_events(items[start : start + 500])  # each batch commits, then detection runs

    async def scenario():
        client = await open_channel("alerts", token)  # validates every message it receives
        await database_sync_to_async(ingest_in_batches)()
        got = []
        while not await client.nothing_more(0.5):
            got.append(await client.receive())
        await client.close()
        return got

    received = async_to_sync(scenario)()

    [alert] = brute_force_alerts()
    assert alert.occurrence_count == 3561
    # Every counted event is linked: the alert's events number its occurrence_count.
    assert list(alert.events.order_by("event_id").values_list("agent_record_id", flat=True)) == (
        list(range(3561))
    )
    assert alert.first_seen == START
    assert alert.last_seen == START + timedelta(seconds=3560 * 0.05)

    # One `created`, then one `updated` per later batch (8 batches in all), never another alert.
    assert [(m["type"], m["action"]) for m in received] == [("alert", "created")] + [
        ("alert", "updated")
    ] * 7
    assert {m["data"]["alert_id"] for m in received} == {alert.alert_id}
    assert received[0]["data"]["category"] == "brute_force"


@pytest.mark.django_db
def test_a_repeat_after_the_dedup_window_opens_a_new_alert(
    settings, django_capture_on_commit_callbacks
):
    settings.DETECTION_DEDUP_WINDOW_SEC = 3600
    ingest([failed_logon(i) for i in range(8)], django_capture_on_commit_callbacks)
    ingest([failed_logon(1800 + i) for i in range(8)], django_capture_on_commit_callbacks)
    [alert] = brute_force_alerts()
    assert alert.occurrence_count == 16  # 30 minutes later: still the same attack

    ingest([failed_logon(3 * 3600 + i) for i in range(8)], django_capture_on_commit_callbacks)
    old, new = brute_force_alerts()
    assert (old.occurrence_count, new.occurrence_count) == (16, 8)
    assert new.dedup_key == "builtin.brute_force|dc-01|administrator|203.0.113.7"
    assert old.dedup_key == f"{new.dedup_key}#{old.alert_id}"
    assert old.status == new.status == "new"  # the old one is left for the analyst


@pytest.mark.django_db
def test_a_resolved_alert_is_not_reopened_by_a_repeat(django_capture_on_commit_callbacks):
    from alerts.services import resolve_alert

    ingest([failed_logon(i) for i in range(8)], django_capture_on_commit_callbacks)
    [alert] = brute_force_alerts()
    with django_capture_on_commit_callbacks(execute=True):
        resolve_alert(alert, actor=None, resolution="blocked at the firewall")
    ingest([failed_logon(60 + i) for i in range(3)], django_capture_on_commit_callbacks)
    first, second = brute_force_alerts()
    assert (first.status, first.occurrence_count) == ("resolved", 8)
    assert (second.status, second.occurrence_count) == ("new", 3)


@pytest.mark.django_db
def test_threshold_window_and_enabled_come_from_the_admin_rows(
    django_capture_on_commit_callbacks,
):
    DetectionRule.objects.update_or_create(
        rule_id="builtin.brute_force", defaults={"threshold": 3, "window_seconds": 10}
    )
    ingest([failed_logon(i * 4) for i in range(3)], django_capture_on_commit_callbacks)
    assert [a.occurrence_count for a in brute_force_alerts()] == [3]

    DetectionRule.objects.filter(rule_id="builtin.brute_force").update(enabled=False)
    ingest(
        [failed_logon(100 + i, account="bob") for i in range(20)],
        django_capture_on_commit_callbacks,
    )
    assert [a.occurrence_count for a in brute_force_alerts()] == [3]


@pytest.mark.django_db
def test_settings_give_the_defaults(settings, django_capture_on_commit_callbacks):
    settings.DETECTION_BRUTE_FORCE_THRESHOLD = 4
    ingest([failed_logon(i) for i in range(4)], django_capture_on_commit_callbacks)
    assert [a.occurrence_count for a in brute_force_alerts()] == [4]


@pytest.mark.django_db
def test_out_of_order_events_land_in_their_event_time_window(django_capture_on_commit_callbacks):
    # An agent retry delivers the first half of a burst after the second half.
    ingest([failed_logon(100 + i) for i in range(4)], django_capture_on_commit_callbacks)
    assert brute_force_alerts() == []
    ingest([failed_logon(90 + i) for i in range(4)], django_capture_on_commit_callbacks)
    [alert] = brute_force_alerts()
    assert alert.occurrence_count == 8
    assert alert.first_seen == START + timedelta(seconds=90)


@pytest.mark.django_db
def test_redis_down_still_raises_single_event_alerts(django_capture_on_commit_callbacks):
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    engine = Engine(store=WindowStore(dead))
    cleared = {
        "EventID": 1102,
        "Computer": "DC-01",
        "Channel": "Security",
        "TimeCreated": "2019-03-18T11:00:00Z",
        "SubjectUserName": "mallory",
    }
    with django_capture_on_commit_callbacks(execute=False):
        create_events(
            [normalize_record(r) for r in [cleared, *(failed_logon(i) for i in range(10))]]
        )
    fired = engine.process(list(SecurityEvent.objects.order_by("event_id")))
    assert fired == {"builtin.audit_log_cleared": 1}
    assert list(Alert.objects.values_list("rule_id", flat=True)) == ["builtin.audit_log_cleared"]
    # Marked down: the next batches skip the windows at once instead of waiting on Redis.
    with pytest.raises(redis.ConnectionError, match="marked down"):
        engine.store.update([("r", ("g",), WindowSpec(60, 2), 1, 0.0, "")])


@pytest.mark.django_db(transaction=True)
def test_two_workers_feeding_halves_of_a_burst_neither_miss_nor_double(settings):
    """Two engines (separate Redis connections) interleave micro-batches of one burst.

    Matching and the Redis windows run truly concurrently. The alert writes run concurrently on
    PostgreSQL; SQLite allows one writer at a time, so there they take turns (a lock), which
    still exercises the partial unique index race in raise_or_repeat.
    """
    settings.DETECTION_ENABLED = False  # store the burst first; the workers detect it
    settings.DETECTION_CONFIG_TTL_SEC = 3600
    records = [failed_logon(i * 0.1, record=i) for i in range(400)]
    create_events([normalize_record(r) for r in records])
    settings.DETECTION_ENABLED = True
    events = list(SecurityEvent.objects.order_by("event_id"))
    halves = [events[0::2], events[1::2]]
    barrier = threading.Barrier(2)
    write_lock = threading.Lock() if connection.vendor == "sqlite" else None
    errors: list[BaseException] = []
    fired_total = []

    def worker(mine):
        engine = Engine(store=WindowStore(redis.Redis.from_url(django_settings.REDIS_URL)))
        try:
            for start in range(0, len(mine), 25):
                barrier.wait(timeout=30)  # both workers process a batch at the same moment
                findings, fired = engine.evaluate(mine[start : start + 25])
                fired_total.append(sum(fired.values()))
                if write_lock is None:
                    engine.raise_alerts(findings)
                else:
                    with write_lock:
                        engine.raise_alerts(findings)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            from django.db import connection as thread_connection

            thread_connection.close()

    threads = [threading.Thread(target=worker, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [alert] = brute_force_alerts()
    assert alert.occurrence_count == 400
    assert sum(fired_total) == 400
    assert alert.events.count() == 400


def test_detection_of_an_empty_batch_does_nothing():
    assert detect_events([]) == {}


def test_the_window_store_counts_a_retried_event_once_and_reports_it_once():
    forget_windows()
    store = WindowStore(redis.Redis.from_url(django_settings.REDIS_URL))
    spec = WindowSpec(60, 3)
    first = store.update([("t", ("g",), spec, i, 100.0 + i, "") for i in (1, 2)])
    assert first[("t", ("g",))].reported == []
    again = store.update([("t", ("g",), spec, 2, 102.0, "")])  # an agent retry of event 2
    assert (again[("t", ("g",))].metric, again[("t", ("g",))].reported) == (2, [])
    fired = store.update([("t", ("g",), spec, 3, 103.0, ""), ("t", ("g",), spec, 3, 103.0, "")])
    assert sorted(fired[("t", ("g",))].reported) == [1, 2, 3]
    later = store.update([("t", ("g",), spec, 4, 104.0, "")])
    assert later[("t", ("g",))].reported == [4]
    forget_windows()


def test_distinct_windows_count_values_not_events():
    forget_windows()
    store = WindowStore(redis.Redis.from_url(django_settings.REDIS_URL))
    spec = WindowSpec(600, 3, distinct=True)
    same = store.update([("s", ("ip",), spec, i, 10.0 + i, "alice") for i in range(10)])
    assert (same[("s", ("ip",))].metric, same[("s", ("ip",))].reported) == (1, [])
    more = store.update(
        [("s", ("ip",), spec, 10, 30.0, "bob"), ("s", ("ip",), spec, 11, 31.0, "carol")]
    )
    assert more[("s", ("ip",))].metric == 3
    assert sorted(more[("s", ("ip",))].reported) == list(range(12))
    forget_windows()


@pytest.mark.django_db
def test_failed_logons_posted_to_the_bulk_api_raise_the_alert(
    analyst, django_capture_on_commit_callbacks
):
    from tests.api_helpers import bearer_client

    client = bearer_client(analyst)  # analyst: may create events
    records = [normalize_record(failed_logon(i)) for i in range(8)]
    body = [
        {
            "computer": r["computer"],
            "event_code": r["event_code"],
            "severity": r["severity"],
            "message": r["message"],
            "source_type": r["source_type"],
            "timestamp": r["timestamp"].isoformat(),
            "raw": r["raw"],
        }
        for r in records
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/events/bulk/", body, format="json")
    assert response.status_code == 201, response.content
    [alert] = brute_force_alerts()
    assert (alert.hostname, alert.occurrence_count) == ("DC-01", 8)
    assert alert.dedup_key == "builtin.brute_force|dc-01|administrator|203.0.113.7"


@pytest.mark.django_db
def test_an_agent_batch_retried_in_part_counts_each_failed_logon_once(
    django_capture_on_commit_callbacks,
):
    from rest_framework.test import APIClient

    from agents.services import register_agent

    _agent, token = register_agent(hostname="DC-01")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent {token}")
    first = [failed_logon(i, record=100 + i) for i in range(5)]
    retry_and_more = first + [failed_logon(5 + i, record=105 + i) for i in range(3)]
    for batch in (first, retry_and_more):  # the agent did not get the first answer
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/agents/events/", batch, format="json")
        assert response.status_code == 201, response.content
    assert response.json()["duplicates"] == 5
    [alert] = brute_force_alerts()
    assert alert.occurrence_count == 8
