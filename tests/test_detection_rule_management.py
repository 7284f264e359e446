"""Rule management in the engine: exceptions, level overrides, hits per rule.

Events go through the ingestion path (create_events → the on-commit detection step →
alerts.services) against a Sigma rule set of this test's own (tests/rules_helpers.py) and the
built-in rules; windows live in real Redis under this test's key prefix. Changes are made
through alerts.detection.services, as the admin and the API make them.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accounts.models import AuditLog
from alerts import context
from alerts.detection import services
from alerts.detection.engine import Engine, get_engine
from alerts.detection.hits import ALL_TIME, hit_counts, hits_by_rule, record_hits
from alerts.models import Alert, DetectionRule, RuleHit, SigmaRule
from tests.detection_helpers import fresh_detection
from tests.rules_helpers import (
    TASK_BURST,
    TASK_RULE,
    ingest,
    task_created,
    user_created,
    write_rules,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules_dir(settings, tmp_path):
    with fresh_detection(settings, sigma_dir=write_rules(tmp_path), config_ttl=None):
        get_engine()  # records the rules in SigmaRule
        yield


def alerts_of(rule_id: str) -> list[Alert]:
    return list(Alert.objects.filter(rule_id=rule_id).order_by("alert_id"))


def test_an_exception_silences_its_rule_for_matching_events_only(
    django_capture_on_commit_callbacks, admin_user
):
    services.add_rule_exception(
        TASK_RULE, conditions={"SubjectUserName": "SVC_Backup"}, actor=admin_user
    )
    ingest([task_created(0, subject="svc_backup")], django_capture_on_commit_callbacks)
    assert alerts_of(TASK_RULE) == []
    ingest([task_created(1, subject="alice")], django_capture_on_commit_callbacks)
    [alert] = alerts_of(TASK_RULE)
    assert "alice" in alert.description


def test_every_condition_must_hold_and_any_listed_value_does(
    django_capture_on_commit_callbacks, admin_user
):
    services.add_rule_exception(
        TASK_RULE,
        conditions={"SubjectUserName": ["svc_backup", "svc_sql"], "host": "ws-01"},
        actor=admin_user,
    )
    ingest(
        [
            task_created(0, subject="svc_sql", host="WS-01"),  # excepted
            task_created(1, subject="svc_backup", host="WS-01"),  # excepted
            task_created(2, subject="svc_sql", host="WS-02"),  # other host: alerts
        ],
        django_capture_on_commit_callbacks,
    )
    assert [alert.hostname for alert in alerts_of(TASK_RULE)] == ["WS-02"]


def test_excepted_events_are_not_counted_into_a_correlation(
    django_capture_on_commit_callbacks, admin_user
):
    services.add_rule_exception(TASK_BURST, conditions={"TaskName": "\\Updater"}, actor=admin_user)
    # Three tasks by bob within minutes, two of them excepted: below the threshold of 3.
    ingest(
        [
            task_created(0, subject="bob"),
            task_created(10, subject="bob"),
            task_created(20, subject="bob", task="\\Evil"),
        ],
        django_capture_on_commit_callbacks,
    )
    assert alerts_of(TASK_BURST) == []
    assert len(alerts_of(TASK_RULE)) == 1  # the base rule has no exception: it alerts
    ingest(
        [task_created(30 + i, subject="bob", task=f"\\Evil{i}") for i in range(2)],
        django_capture_on_commit_callbacks,
    )
    [burst] = alerts_of(TASK_BURST)
    assert burst.occurrence_count == 3


def test_an_exception_on_a_builtin_rule(django_capture_on_commit_callbacks, admin_user):
    services.add_rule_exception(
        "builtin.user_created", conditions={"SubjectUserName": "provisioning"}, actor=admin_user
    )
    ingest(
        [
            user_created(0, subject="provisioning", target="hired"),
            user_created(1, subject="mallory", target="backdoor"),
        ],
        django_capture_on_commit_callbacks,
    )
    [alert] = alerts_of("builtin.user_created")  # keyed by (host, new account)
    assert alert.occurrence_count == 1 and alert.description.endswith("dc-01 / backdoor")


def test_removing_an_exception_brings_the_alerts_back(
    django_capture_on_commit_callbacks, admin_user
):
    exception = services.add_rule_exception(
        TASK_RULE, conditions={"host": "WS-01"}, actor=admin_user
    )
    ingest([task_created(0)], django_capture_on_commit_callbacks)
    assert alerts_of(TASK_RULE) == []
    services.delete_rule_exception(exception, actor=admin_user)
    ingest([task_created(1)], django_capture_on_commit_callbacks)
    assert len(alerts_of(TASK_RULE)) == 1
    actions = list(AuditLog.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == ["rule.exception_added", "rule.exception_removed"]


def test_exceptions_reach_another_process_like_enable_disable(settings, admin_user):
    """Another worker's engine re-reads its configuration every DETECTION_CONFIG_TTL_SEC."""
    settings.DETECTION_CONFIG_TTL_SEC = 3600
    other = Engine(get_engine().sigma)
    assert other.config().exceptions == {}
    services.add_rule_exception(TASK_RULE, conditions={"host": "WS-01"}, actor=admin_user)
    assert other.config().exceptions == {}  # cached: this "process" was not told
    settings.DETECTION_CONFIG_TTL_SEC = 0  # its TTL has passed
    assert set(other.config().exceptions) == {TASK_RULE}
    assert get_engine().config().exceptions.keys() == {TASK_RULE}  # this process: at once


def test_a_level_override_is_the_new_alerts_severity(
    django_capture_on_commit_callbacks, admin_user
):
    row = SigmaRule.objects.get(rule_id=TASK_RULE)
    services.set_sigma_rule_level(row, level="critical", actor=admin_user)
    ingest([task_created(0)], django_capture_on_commit_callbacks)
    [alert] = alerts_of(TASK_RULE)
    assert alert.severity == 5
    assert context.rule(alert)["level"] == "critical"
    entry = AuditLog.objects.get(action="rule.changed")
    assert entry.details["level_override"] == {"from": "", "to": "critical"}
    services.set_sigma_rule_level(row, level="", actor=admin_user)
    ingest([task_created(1, host="WS-09")], django_capture_on_commit_callbacks)
    assert alerts_of(TASK_RULE)[-1].severity == 3  # the rule's own level, medium


def test_a_builtin_severity_override_is_the_new_alerts_severity(
    django_capture_on_commit_callbacks, admin_user
):
    from alerts.detection.catalog import ensure_builtin_rows

    ensure_builtin_rows()
    row = DetectionRule.objects.get(rule_id="builtin.user_created")
    services.update_detection_rule(row, actor=admin_user, severity=1)
    ingest([user_created(0)], django_capture_on_commit_callbacks)
    [alert] = alerts_of("builtin.user_created")
    assert alert.severity == 1 and context.rule(alert)["level"] == "informational"


def test_hits_count_alerts_raised_and_events_matched(django_capture_on_commit_callbacks):
    # Host WS-01: 4 tasks by alice in two batches (one alert, 4 events); WS-02: 1 (one alert).
    ingest([task_created(i) for i in range(3)], django_capture_on_commit_callbacks)
    ingest([task_created(3), task_created(4, host="WS-02")], django_capture_on_commit_callbacks)
    hits = hits_by_rule()[TASK_RULE]
    assert (hits["alerts_24h"], hits["events_24h"]) == (2, 5)
    assert (hits["alerts_7d"], hits["events_7d"]) == (2, 5)
    assert hits["last_hit"] is not None
    # The correlation (by SubjectUserName, any host): alice's first 3 tasks reached gte 3, the
    # next 2 repeat its one alert.
    burst = hits_by_rule()[TASK_BURST]
    assert (burst["alerts_24h"], burst["events_24h"]) == (1, 5)
    assert [a.occurrence_count for a in alerts_of(TASK_BURST)] == [5]
    assert sum(a.occurrence_count for a in alerts_of(TASK_RULE)) == 5


def test_hits_windows_are_hour_buckets():
    now = timezone.now().replace(minute=30)
    record_hits({"r": (1, 10)}, now=now)
    record_hits({"r": (2, 20)}, now=now - timedelta(hours=23))  # in the 24 h window
    record_hits({"r": (4, 40)}, now=now - timedelta(hours=24))  # only in 7 d
    record_hits({"r": (8, 80)}, now=now - timedelta(hours=168))  # in neither
    record_hits({"r": (0, 5)}, now=now)  # same hour: added to the same row
    hits = hits_by_rule(now=now)["r"]
    assert (hits["alerts_24h"], hits["events_24h"]) == (3, 35)
    assert (hits["alerts_7d"], hits["events_7d"]) == (7, 75)
    assert hits["last_hit"] == now
    assert RuleHit.objects.filter(rule_id="r").exclude(hour=ALL_TIME).count() == 4
    total = RuleHit.objects.get(rule_id="r", hour=ALL_TIME)  # totals and the last hit
    assert (total.alerts, total.events, total.last_hit) == (15, 155, now)


def test_a_rolled_back_batch_counts_no_hits(django_capture_on_commit_callbacks):
    """The pipeline step runs in the batch's transaction: a retried batch counts once."""
    from django.db import transaction

    from events.models import SecurityEvent

    ingest([task_created(0)], django_capture_on_commit_callbacks)
    RuleHit.objects.all().delete()
    events = list(SecurityEvent.objects.all())
    with pytest.raises(RuntimeError), transaction.atomic():
        get_engine().process(events)
        assert RuleHit.objects.filter(rule_id=TASK_RULE).exists()
        raise RuntimeError("the batch failed after detection")
    assert not RuleHit.objects.exists()
    get_engine().process(events)
    assert hits_by_rule()[TASK_RULE]["events_24h"] == 1


def test_the_daily_purge_drops_hour_rows_past_the_window_and_keeps_the_totals():
    from siem.tasks import purge_expired_data

    now = timezone.now()
    record_hits({"r": (1, 2)}, now=now - timedelta(hours=200))
    record_hits({"r": (1, 3)}, now=now - timedelta(hours=100))
    before = hits_by_rule()["r"]
    assert purge_expired_data()["rule_hit_rows_deleted"] == 1
    assert hits_by_rule()["r"] == before
    assert RuleHit.objects.get(rule_id="r", hour=ALL_TIME).events == 5


@pytest.mark.django_db(transaction=True)
def test_hits_stay_exact_with_workers_racing_on_the_same_rules():
    """Upserts from several threads (each its own connection and transactions) add up."""
    import threading

    from django.db import connection, transaction

    if connection.vendor == "sqlite":
        pytest.skip("SQLite serializes writers; the race is PostgreSQL's")
    errors: list[Exception] = []

    def worker() -> None:
        try:
            for _ in range(25):
                with transaction.atomic():
                    record_hits({"a": (1, 2), "b": (0, 3)})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    hits = hits_by_rule()
    assert (hits["a"]["alerts_24h"], hits["a"]["events_24h"]) == (100, 200)
    assert hits["b"]["events_7d"] == 300


def test_a_sigma_rule_folded_into_a_builtin_alert_still_counts_the_events_it_matched():
    finding = SimpleNamespace(
        rule_id="builtin.audit_log_cleared",
        count=2,
        also=[{"id": "sigma:log-cleared", "event_ids": [11, 12]}],
    )
    raised = SimpleNamespace(rule_id="builtin.audit_log_cleared")
    assert hit_counts([finding], [(raised, True)]) == {
        "builtin.audit_log_cleared": (1, 2),
        "sigma:log-cleared": (0, 2),  # no alert of its own, but its matches
    }
