"""The post-commit pipeline of stored events: outbox in the write's transaction, fast path,
relay, exactly-once detection and once-only broadcasts (events/pipeline.py).

A process that dies between commit and its post-commit work is simulated by capturing the
on-commit callbacks and never running them (the rows are written, the fast path never runs).
Caller: `agent` — an enrolled agent for host WS-001. Real Redis (this run's key prefix).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
import redis
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from agents import services as agent_services
from alerts.detection import engine as detection_engine
from alerts.models import Alert
from events import pipeline
from events.models import PipelineItem, SecurityEvent
from events.normalize import normalize_record
from events.services import create_events
from realtime import history
from realtime.manager import get_connection_manager
from tests.detection_helpers import fresh_detection
from tests.test_agents_helpers import MESSAGE_SCHEMA, agent_client

START = datetime(2026, 11, 30, 22, 0, 0, tzinfo=UTC)
AGENT_EVENTS = "/api/v1/agents/events/"


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=""):
        yield


def failed_logon(second: float, record: int | None = None, account: str = "alice") -> dict:
    """A 4625 from one attacker address (brute force: 8 within 240 s by default)."""
    return {
        "EventID": 4625,
        "Computer": "DC-01",
        "Channel": "Security",
        "TimeCreated": (START + timedelta(seconds=second)).isoformat().replace("+00:00", "Z"),
        "EventRecordID": record,
        "TargetUserName": account,
        "TargetDomainName": "EXAMPLE",
        "Status": "0xc000006d",
        "LogonType": 3,
        "WorkstationName": "KALI",
        "IpAddress": "203.0.113.7",
    }


def items(count: int, first_second: int = 0) -> list[dict]:
    return [normalize_record(failed_logon(first_second + i)) for i in range(count)]


def brute_force_count() -> int:
    return sum(
        Alert.objects.filter(rule_id="builtin.brute_force").values_list(
            "occurrence_count", flat=True
        )
    )


def expire_leases() -> None:
    """What PIPELINE_LEASE_SEC seconds later looks like to the relay."""
    PipelineItem.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))


def event_messages(broadcasts) -> list[dict]:
    return [m for group, m in broadcasts if group == "siem.events"]


@pytest.mark.django_db
def test_broadcast_and_detection_are_the_registered_steps_in_that_order():
    names = [step.name for step in pipeline.steps()]
    assert names[:2] == ["events.broadcast", "alerts.detection"]
    assert [s.transactional for s in pipeline.steps()[:2]] == [False, True]


@pytest.mark.django_db
def test_a_write_owes_each_step_in_its_own_transaction_and_the_fast_path_pays_it(
    broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = create_events(items(3)).created
    ids = [event.pk for event in created]
    owed = list(PipelineItem.objects.values_list("step", "event_ids"))
    assert owed == [("events.broadcast", ids), ("alerts.detection", ids)]
    assert event_messages(broadcasts) == []  # nothing before commit

    for callback in callbacks:
        callback()
    assert PipelineItem.objects.count() == 0
    sent = event_messages(broadcasts)
    assert [m["data"]["event_id"] for m in sent] == ids
    for message in sent:
        jsonschema.validate(message, MESSAGE_SCHEMA)


@pytest.mark.django_db
def test_the_fast_path_settles_a_batch_in_one_commit(django_capture_on_commit_callbacks):
    """Every commit is a disk flush: the broadcast's row goes with detection's commit."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create_events(items(3))
    with CaptureQueriesContext(connection) as queries:
        for callback in callbacks:
            callback()
    sql = [q["sql"] for q in queries]
    deletes = [n for n, text in enumerate(sql) if text.startswith("DELETE")]
    # Both rows (detection's, then the broadcast's) inside detection's atomic block (here a
    # savepoint of the test's transaction; in production the block is the transaction).
    assert len(deletes) == 2
    opened = max(n for n, text in enumerate(sql[: deletes[0]]) if text.startswith("SAVEPOINT"))
    released = min(n for n, text in enumerate(sql) if n > deletes[1] and "RELEASE" in text)
    assert opened < deletes[0] < deletes[1] < released
    assert PipelineItem.objects.count() == 0


@pytest.mark.django_db
def test_a_rolled_back_write_owes_nothing(broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            create_events(items(2))
            raise RuntimeError("the caller changed its mind")
    assert SecurityEvent.objects.count() == 0
    assert PipelineItem.objects.count() == 0
    assert event_messages(broadcasts) == []


@pytest.mark.django_db
def test_work_a_crashed_process_left_is_done_once_by_the_relay_after_its_lease(
    broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the process dies after commit
        created = create_events(items(20)).created
    assert pipeline.drain() == 0  # still leased to the (dead) writer: nobody takes it yet
    assert brute_force_count() == 0 and event_messages(broadcasts) == []

    expire_leases()
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.drain() == 2
        assert pipeline.drain() == 0
    assert PipelineItem.objects.count() == 0
    assert [m["data"]["event_id"] for m in event_messages(broadcasts)] == [e.pk for e in created]
    assert brute_force_count() == 20  # every stored failed logon, once


@pytest.mark.django_db
def test_detection_interrupted_after_its_window_update_counts_each_event_once(
    monkeypatch, django_capture_on_commit_callbacks
):
    """Redis ran the window update, then the alert write failed (a crash would do the same):
    the retry gets the window's first answer back instead of counting or losing events."""
    real = detection_engine.Engine.raise_alerts
    calls = []

    def fail_first(findings):
        calls.append(len(findings))
        if len(calls) == 1:
            raise ConnectionResetError("database went away mid-write")
        return real(findings)

    monkeypatch.setattr(detection_engine.Engine, "raise_alerts", staticmethod(fail_first))
    with django_capture_on_commit_callbacks(execute=True):
        create_events(items(12))
    assert brute_force_count() == 0
    [owed] = PipelineItem.objects.all()
    assert (owed.step, owed.attempts) == ("alerts.detection", 1)
    assert "database went away" in owed.last_error

    expire_leases()
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.drain() == 1
        create_events(items(3, first_second=12))  # the burst goes on
    assert brute_force_count() == 15


@pytest.mark.django_db
def test_a_slow_run_that_lost_its_lease_rolls_back_and_the_new_holder_counts_once(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create_events(items(10))
    expire_leases()
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.drain() == 2  # the relay took over and finished
        for callback in callbacks:  # the original wakes up and runs its fast path
            callback()
    assert brute_force_count() == 10


@pytest.mark.django_db
def test_an_agent_retry_completes_what_the_original_left(
    broadcasts, django_capture_on_commit_callbacks
):
    agent, token = agent_services.register_agent(hostname="DC-01")
    client = agent_client(token)
    batch = [failed_logon(i, record=1000 + i) for i in range(10)]
    with django_capture_on_commit_callbacks(execute=False):  # the server dies after commit
        first = client.post(AGENT_EVENTS, batch, format="json")
    assert first.status_code == 201
    expire_leases()

    with django_capture_on_commit_callbacks(execute=True):
        retry = client.post(AGENT_EVENTS, batch, format="json")
    assert retry.status_code == 200
    assert retry.json() == {"created": 0, "duplicates": 10, "event_ids": []}
    assert PipelineItem.objects.count() == 0
    assert sorted(m["data"]["event_id"] for m in event_messages(broadcasts)) == sorted(
        first.json()["event_ids"]
    )
    assert brute_force_count() == 10


@pytest.mark.django_db
def test_a_step_registered_by_another_app_gets_the_committed_rows_and_a_stable_key(
    django_capture_on_commit_callbacks,
):
    seen = []
    flaky = {"fail": True}

    def notify(events, context):
        seen.append(([e.pk for e in events], context.key, context.attempt))
        if flaky.pop("fail", False):
            raise TimeoutError("provider down")

    pipeline.register(pipeline.Step("tests.notify", notify))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            created = create_events(items(2))
        ids = [e.pk for e in created.created]
        assert [s[0] for s in seen] == [ids]
        assert list(PipelineItem.objects.values_list("step", flat=True)) == ["tests.notify"]
        expire_leases()
        assert pipeline.drain() == 1
    finally:
        pipeline.unregister("tests.notify")
    assert [(s[0], s[2]) for s in seen] == [(ids, 1), (ids, 2)]
    assert seen[0][1] == seen[1][1]  # same key on the retry
    assert PipelineItem.objects.count() == 0


@pytest.mark.django_db
def test_publishing_the_same_events_twice_under_one_key_sends_them_once():
    created = create_events(items(150)).created  # 300 messages: two script calls
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    log = history.log_key("events")
    # Entries after the newest one now (the log is capped, so its length may not grow).
    newest = client.xrevrange(log, count=1)
    start = f"({newest[0][0].decode()}" if newest else "-"

    def added() -> int:
        return len(client.xrange(log, min=start))

    manager = get_connection_manager()
    manager.send_events_now(created, key="batch-once-test")
    manager.send_events_now(created, key="batch-once-test")
    assert added() == 150
    manager.send_events_now(created[:1], key="another-batch")
    assert added() == 151


@pytest.mark.e2e
@pytest.mark.django_db
def test_while_redis_is_down_detection_waits_in_the_outbox_and_counts_everything_after(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """A private redis-server (AOF) is killed: the events are stored, nothing is counted or
    skipped; once it is back, the relay counts each failed logon once and publishes each event
    once (the process's backlog and the relay race; the once-only key settles it)."""
    import time

    from tests.browser_support import free_port
    from tests.test_realtime_redis_outage import REDIS_SERVER, PrivateRedis

    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary")
    server = PrivateRedis(free_port())
    # Persistent, as production should run it: the windows survive the restart.
    server.extra = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    server.extra += ["--dir", str(tmp_path)]
    server.start()
    shared = settings.REDIS_URL
    settings.REDIS_URL = server.url
    try:
        with django_capture_on_commit_callbacks(execute=True):
            create_events(items(5))  # counted: below the threshold, in the window
        server.kill()
        with django_capture_on_commit_callbacks(execute=True):
            stored = create_events(items(20, first_second=5)).created
        assert SecurityEvent.objects.count() == 25
        assert brute_force_count() == 0
        assert sorted(PipelineItem.objects.values_list("step", flat=True)) == [
            "alerts.detection",
            "events.broadcast",
        ]

        server.start()
        deadline = time.monotonic() + 30
        while PipelineItem.objects.exists() and time.monotonic() < deadline:
            expire_leases()
            with django_capture_on_commit_callbacks(execute=True):
                pipeline.drain()
            time.sleep(0.5)
        assert not PipelineItem.objects.exists()
        assert brute_force_count() == 25
        client = redis.Redis.from_url(server.url)
        published = [
            json.loads(fields[b"m"])["data"]["event_id"]
            for _, fields in client.xrange(history.log_key("events"))
        ]
        # The 5 before the outage and the 20 during it, each once.
        assert sorted(published) == sorted(SecurityEvent.objects.values_list("pk", flat=True))
        assert {e.pk for e in stored} <= set(published)
    finally:
        server.kill()
        settings.REDIS_URL = shared
