# ruff: noqa: E501 - the Sigma specification's example is quoted verbatim, long lines included
"""Sequences in event time: Sigma `temporal` / `temporal_ordered` correlations and the built-in
"successful logon after repeated failures" rule.

Windows live in real Redis under this test's key prefix (`fresh_detection`); events go through
ingestion (normalize_record → create_events → on-commit detection → alerts). Rule files are
written in SigmaHQ's style (multi-document YAML, rules referenced by `name`), one of them the
specification's own example verbatim.
"""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings

from alerts.detection import detect_events
from alerts.detection.engine import get_engine, reset_engine
from alerts.detection.sigma import load_rules
from alerts.detection.windows import WindowSpec, WindowStore
from alerts.models import Alert, DetectionRule
from events.models import SecurityEvent
from events.normalize import normalize_record
from events.services import create_events
from tests.detection_helpers import forget_windows, fresh_detection
from tests.test_detection_correlation import START, failed_logon


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=""):
        yield


def logon(second: float, *, account="Administrator", ip="203.0.113.7", host="DC-01"):
    """A network 4624 in the shape of the real records."""
    record = failed_logon(second, account=account, ip=ip, host=host)
    for name in ("Status", "FailureReason", "SubStatus"):
        record.pop(name)
    record.update(EventID=4624, TargetUserSid="S-1-5-21-1-2-3-500", KeyLength=128)
    return record


def ingest(records, capture):
    with capture(execute=True):
        create_events([normalize_record(r) for r in records])


# --- the window store: sequences --------------------------------------------------------------
def store() -> WindowStore:
    return WindowStore(redis.Redis.from_url(django_settings.REDIS_URL))


ORDERED = WindowSpec(60, 0, steps=(1, 1), ordered=True)
ANY_ORDER = WindowSpec(60, 0, steps=(1, 1, 1))


def hit(result, name="r", group=("g",)):
    found = result[(name, group)]
    return found.metric, sorted(found.reported)


def test_an_ordered_sequence_fires_in_its_order_only_and_within_its_timespan():
    windows = store()
    assert hit(windows.update([("r", ("g",), ORDERED, 1, 100.0, 0)])) == (0, [])
    assert hit(windows.update([("r", ("g",), ORDERED, 2, 130.0, 1)])) == (1, [1, 2])
    # Wrong order: the second step first.
    wrong = [("r", ("h",), ORDERED, 3, 100.0, 1), ("r", ("h",), ORDERED, 4, 110.0, 0)]
    assert hit(windows.update(wrong), group=("h",)) == (0, [])
    # Right order, 61 s apart: outside the 60 s timespan.
    late = [("r", ("i",), ORDERED, 5, 100.0, 0), ("r", ("i",), ORDERED, 6, 161.0, 1)]
    assert hit(windows.update(late), group=("i",)) == (0, [])
    # The first step arriving after the second (an import, an agent retry) still counts in
    # event time.
    assert hit(windows.update([("r", ("j",), ORDERED, 8, 130.0, 1)]), group=("j",)) == (0, [])
    assert hit(windows.update([("r", ("j",), ORDERED, 7, 100.0, 0)]), group=("j",)) == (1, [7, 8])
    forget_windows()


def test_an_unordered_sequence_needs_every_step_within_the_timespan_in_any_order():
    windows = store()
    first = [("r", ("g",), ANY_ORDER, 1, 100.0, 2), ("r", ("g",), ANY_ORDER, 2, 110.0, 0)]
    assert hit(windows.update(first)) == (0, [])
    # The missing step, earlier than both: 100-90 and 110-90 fit in 60 s.
    assert hit(windows.update([("r", ("g",), ANY_ORDER, 3, 90.0, 1)])) == (1, [1, 2, 3])
    spread = [
        ("r", ("h",), ANY_ORDER, 4, 100.0, 0),
        ("r", ("h",), ANY_ORDER, 5, 130.0, 1),
        ("r", ("h",), ANY_ORDER, 6, 161.0, 2),
    ]
    assert hit(windows.update(spread), group=("h",)) == (0, [])
    forget_windows()


def test_a_rerun_of_a_batch_gets_its_first_answer_and_counts_nothing_twice():
    windows = store()
    batch = [("r", ("g",), ORDERED, 1, 100.0, 0), ("r", ("g",), ORDERED, 2, 101.0, 1)]
    assert hit(windows.update(batch, token="batch-1")) == (1, [1, 2])
    # The relay runs the batch again (its transaction rolled back): same answer, no new state.
    assert hit(windows.update(batch, token="batch-1")) == (1, [1, 2])
    # Another batch: only its own new events are reported.
    more = [("r", ("g",), ORDERED, 3, 102.0, 1)]
    assert hit(windows.update(more, token="batch-2")) == (1, [3])
    forget_windows()


# --- Sigma temporal correlations ----------------------------------------------------------------
# The Sigma specification's example ("Failed Logins Followed by Successful Login"), verbatim.
SPEC_EXAMPLE = """\
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
"""

# The same shape with the fields Windows writes (the spec's `User` is a taxonomy name).
WINDOWS_FIELDS = (
    SPEC_EXAMPLE.replace("- User", "- TargetUserName\n        - IpAddress")
    .replace("gte: 10", "gte: 3")
    .replace("b180ead8-d58f-40b2-ae54-c8940995b9b6", "b180ead8-0000-40b2-ae54-c8940995b9b6")
)

RECON = """\
title: Discovery commands in a row
id: 6f4a3a43-62b8-4cf2-9d6f-3c1d8a1e2b10
status: test
correlation:
    type: temporal
    rules:
        - whoami_run
        - group_query
    group-by:
        - SubjectUserName
    timespan: 5m
level: medium
tags:
    - attack.discovery
    - attack.t1033
---
title: whoami
name: whoami_run
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4688, NewProcessName|endswith: '\\\\whoami.exe'}
    condition: selection
---
title: group membership queried
name: group_query
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4799}
    condition: selection
"""


def use_rules(settings, tmp_path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    settings.SIGMA_RULES_DIR = str(tmp_path)
    reset_engine()


def test_the_specifications_example_loads_as_a_chained_ordered_sequence(tmp_path):
    (tmp_path / "mr_failed_then_success.yml").write_text(SPEC_EXAMPLE)
    ruleset = load_rules(tmp_path)
    assert [entry.error for entry in ruleset.entries] == ["", "", "", ""]
    outer, inner = sorted(ruleset.correlations, key=lambda c: c.kind, reverse=True)
    assert (outer.kind, outer.window_seconds, outer.group_by) == ("temporal_ordered", 600, ["user"])
    assert (outer.title, outer.severity) == (
        "Correlation - Multiple Failed Logins Followed by Successful Login",
        4,
    )
    failed, success = (
        f"sigma:{i}"
        for i in ("53ba33fd-3a50-4468-a5ef-c583635cfa92", "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8")
    )
    assert outer.steps == [(frozenset({failed}), 10), (frozenset({success}), 1)]
    # Only the outermost correlation alerts: the event_count step and both base rules do not.
    assert inner.kind == "event_count" and not inner.generates_alerts
    assert not any(rule.generates_alerts for rule in ruleset.rules)


def temporal_alerts():
    return list(Alert.objects.filter(rule_id="sigma:b180ead8-0000-40b2-ae54-c8940995b9b6"))


@pytest.mark.django_db
def test_failures_then_a_success_fire_the_sigma_sequence_with_every_event(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    use_rules(settings, tmp_path, {"mr_failed_then_success.yml": WINDOWS_FIELDS})
    settings.DETECTION_FAILED_THEN_SUCCESS_THRESHOLD = 50  # the built-in rule out of the way
    ingest([failed_logon(i * 10) for i in range(3)], django_capture_on_commit_callbacks)
    assert not Alert.objects.exists()  # the event_count step alone raises nothing
    ingest([logon(100)], django_capture_on_commit_callbacks)
    [alert] = temporal_alerts()
    assert alert.title == "Correlation - Multiple Failed Logins Followed by Successful Login"
    assert (alert.severity, alert.occurrence_count) == (4, 4)
    codes = sorted(alert.events.values_list("event_code", flat=True))
    assert codes == [4624, 4625, 4625, 4625]
    assert alert.dedup_key.endswith("|administrator|203.0.113.7")
    assert Alert.objects.count() == 1


@pytest.mark.django_db
def test_the_sigma_sequence_needs_its_order_its_timespan_and_its_group(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    use_rules(settings, tmp_path, {"mr_failed_then_success.yml": WINDOWS_FIELDS})
    settings.DETECTION_FAILED_THEN_SUCCESS_THRESHOLD = 50
    # Success first, then the failures: wrong order.
    records = [logon(0, ip="198.51.100.1")]
    records += [failed_logon(10 + i, ip="198.51.100.1") for i in range(3)]
    # Failures, then the success 601 s after the first of them: outside the 10 minutes.
    records += [failed_logon(i, ip="198.51.100.2") for i in range(3)]
    records += [logon(601, ip="198.51.100.2")]
    # Failures from one address, the success from another: another group.
    records += [failed_logon(i, ip="198.51.100.3") for i in range(3)]
    records += [logon(30, ip="198.51.100.4")]
    # Failures for one account, the success of another account.
    records += [failed_logon(i, ip="198.51.100.5", account="alice") for i in range(3)]
    records += [logon(30, ip="198.51.100.5", account="bob")]
    ingest(records, django_capture_on_commit_callbacks)
    assert temporal_alerts() == []
    # The control: the same failures from .3, then a success from .3, fire.
    ingest([logon(40, ip="198.51.100.3")], django_capture_on_commit_callbacks)
    [alert] = temporal_alerts()
    assert alert.occurrence_count == 4


@pytest.mark.django_db
def test_an_unordered_temporal_correlation_fires_in_either_order(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    use_rules(settings, tmp_path, {"mr_recon.yml": RECON})

    def process(second, user, whoami):
        record = {
            "EventID": 4688 if whoami else 4799,
            "Computer": "WS-7",
            "Channel": "Security",
            "TimeCreated": (START + timedelta(seconds=second)).isoformat(),
            "SubjectUserName": user,
        }
        if whoami:
            record["NewProcessName"] = "C:\\Windows\\System32\\whoami.exe"
        return record

    ingest(
        [process(0, "eve", False), process(30, "eve", True), process(0, "bob", True)]
        + [process(301, "bob", False)],
        django_capture_on_commit_callbacks,
    )
    [alert] = Alert.objects.all()
    assert (alert.title, alert.category, alert.mitre_techniques) == (
        "Discovery commands in a row",
        "discovery",
        ["T1033"],
    )
    assert alert.occurrence_count == 2 and alert.dedup_key.endswith("|eve")


@pytest.mark.django_db
def test_a_relay_rerun_of_a_batch_raises_the_sequence_once(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """The pipeline reruns a batch whose transaction rolled back after Redis had run its
    update: the rerun gets the first answer back and the alert counts each event once."""
    use_rules(settings, tmp_path, {"mr_failed_then_success.yml": WINDOWS_FIELDS})
    settings.DETECTION_ENABLED = False  # store the events; detection is run by hand below
    ingest([failed_logon(i) for i in range(3)] + [logon(10)], django_capture_on_commit_callbacks)
    events = list(SecurityEvent.objects.order_by("pk"))
    settings.DETECTION_ENABLED = True
    # First run: the windows answer, then the transaction "rolls back" (findings dropped).
    get_engine().evaluate(events, batch_key="batch-7:0", strict=True)
    assert not Alert.objects.exists()
    detect_events(events, batch_key="batch-7", strict=True)  # the relay's rerun
    detect_events(events, batch_key="batch-7", strict=True)  # and once more
    [alert] = temporal_alerts()
    assert alert.occurrence_count == 4 and alert.events.count() == 4


def test_unsupported_temporal_forms_are_refused_with_the_reason(tmp_path):
    partial = RECON.replace("timespan: 5m", "timespan: 5m\n    condition:\n        gte: 1")
    (tmp_path / "partial.yml").write_text(partial)
    ruleset = load_rules(tmp_path)
    [error] = [entry.error for entry in ruleset.entries if entry.error]
    assert error == "temporal conditions other than all of its rules are not supported"


# --- the built-in rule -------------------------------------------------------------------------
def failed_then_success_alerts():
    return list(Alert.objects.filter(rule_id="builtin.failed_then_success"))


@pytest.mark.django_db
def test_five_failures_then_a_success_raise_one_alert_with_all_six_events(
    django_capture_on_commit_callbacks,
):
    ingest([failed_logon(i * 20) for i in range(5)], django_capture_on_commit_callbacks)
    assert failed_then_success_alerts() == []
    ingest([logon(200)], django_capture_on_commit_callbacks)
    [alert] = failed_then_success_alerts()
    assert (alert.title, alert.category, alert.severity, alert.mitre_techniques) == (
        "Successful logon after repeated failures",
        "brute_force",
        4,
        ["T1110"],
    )
    assert sorted(alert.events.values_list("event_code", flat=True)) == [4624] + [4625] * 5
    assert (alert.first_seen, alert.last_seen) == (START, START + timedelta(seconds=200))
    assert alert.dedup_key == "builtin.failed_then_success|dc-01|administrator|203.0.113.7"
    # Another success of the same account from the same source: a repeat of the same alert.
    ingest([logon(230)], django_capture_on_commit_callbacks)
    [alert] = failed_then_success_alerts()
    assert alert.occurrence_count == 7


@pytest.mark.django_db
def test_the_built_in_rule_needs_enough_failures_the_order_the_window_and_the_same_source(
    django_capture_on_commit_callbacks,
):
    records = [failed_logon(i, ip="198.51.100.1") for i in range(4)] + [  # four: too few
        logon(10, ip="198.51.100.1")
    ]
    records += [logon(0, ip="198.51.100.2")]  # success before the failures
    records += [failed_logon(1 + i, ip="198.51.100.2") for i in range(5)]
    records += [failed_logon(i, ip="198.51.100.3") for i in range(5)]  # 601 s after the first
    records += [logon(601, ip="198.51.100.3")]
    records += [failed_logon(i, ip="198.51.100.4") for i in range(5)]  # success from elsewhere
    records += [logon(20, ip="198.51.100.5")]
    records += [failed_logon(i, ip="198.51.100.6", account="WS-9$") for i in range(5)]
    records += [logon(20, ip="198.51.100.6", account="WS-9$")]  # a machine account
    ingest(records, django_capture_on_commit_callbacks)
    assert failed_then_success_alerts() == []


@pytest.mark.django_db
def test_threshold_and_window_come_from_settings_and_the_admin_row(
    settings, django_capture_on_commit_callbacks
):
    settings.DETECTION_FAILED_THEN_SUCCESS_THRESHOLD = 3
    ingest([failed_logon(i) for i in range(3)] + [logon(5)], django_capture_on_commit_callbacks)
    assert len(failed_then_success_alerts()) == 1
    DetectionRule.objects.update_or_create(
        rule_id="builtin.failed_then_success", defaults={"threshold": 2, "window_seconds": 30}
    )
    get_engine().invalidate()
    records = [failed_logon(i, ip="198.51.100.8") for i in (0, 20)] + [logon(29, ip="198.51.100.8")]
    records += [failed_logon(i, ip="198.51.100.9") for i in (0, 20)] + [
        logon(31, ip="198.51.100.9")
    ]
    ingest(records, django_capture_on_commit_callbacks)
    fired = {alert.dedup_key.rsplit("|", 1)[1] for alert in failed_then_success_alerts()}
    assert fired == {"203.0.113.7", "198.51.100.8"}
    DetectionRule.objects.filter(rule_id="builtin.failed_then_success").update(enabled=False)
    get_engine().invalidate()
    ingest(
        [failed_logon(i, ip="198.51.100.10") for i in range(3)], django_capture_on_commit_callbacks
    )
    ingest([logon(9, ip="198.51.100.10")], django_capture_on_commit_callbacks)
    assert len(failed_then_success_alerts()) == 2


# --- checked against pySigma's SQLite backend ----------------------------------------------------
AGAINST_SQLITE = """\
title: Failure then success, in order
id: 7a1b0c2d-0000-4000-8000-00000000000a
correlation:
    type: temporal_ordered
    rules: [one_failure, one_logon]
    group-by: [TargetUserName, IpAddress]
    timespan: 10m
level: high
---
title: Failure and success, any order
id: 7a1b0c2d-0000-4000-8000-00000000000b
correlation:
    type: temporal
    rules: [one_failure, one_logon]
    group-by: [TargetUserName, IpAddress]
    timespan: 10m
level: medium
---
title: One failure
name: one_failure
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
---
title: One logon
name: one_logon
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4624}
    condition: selection
"""


@pytest.mark.django_db
def test_sequences_fire_for_the_same_groups_as_pysigma_sqlite(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """pySigma-backend-sqlite's temporal queries over the same records decide, per group,
    whether each correlation fires; the engine must agree (distinct event times: the backend
    orders strictly, the engine counts equal times as in order)."""
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    from tests.test_detection_sigma import sqlite_logs

    use_rules(settings, tmp_path, {"mr_pairs.yml": AGAINST_SQLITE})
    cases = {  # source address: (failures, logons) in seconds
        "198.51.100.1": ((0,), (300,)),  # in order: both
        "198.51.100.2": ((300,), (0,)),  # reversed: temporal only
        "198.51.100.3": ((0,), (600,)),  # exactly the timespan: both
        "198.51.100.4": ((0,), (601,)),  # one second too far: neither
        "198.51.100.5": ((10,), (0, 700)),  # the only ordered pair is 690 s apart: temporal
        "198.51.100.6": ((0, 100), (650,)),  # the later failure is close enough: both
        "198.51.100.7": ((0, 5, 9), ()),  # failures only: neither
    }
    records = []
    for ip, (failures, logons) in cases.items():
        records += [failed_logon(s, ip=ip) for s in failures] + [logon(s, ip=ip) for s in logons]
    records.sort(key=lambda r: r["TimeCreated"])
    ingest(records, django_capture_on_commit_callbacks)

    db = sqlite_logs(records, normalized=True)
    queries = sqliteBackend().convert(SigmaCollection.from_yaml(AGAINST_SQLITE))
    reference = {}
    for query, kind in zip(queries, ("a", "b"), strict=True):
        cursor = db.execute(query)
        column = [d[0] for d in cursor.description].index("group_keys")
        reference[kind] = {json.loads(row[column])["IpAddress"] for row in cursor}
    ours = {
        kind: {
            alert.dedup_key.rsplit("|", 1)[1]
            for alert in Alert.objects.filter(
                rule_id=f"sigma:7a1b0c2d-0000-4000-8000-00000000000{kind}"
            )
        }
        for kind in ("a", "b")
    }
    assert ours == reference
    assert ours == {
        "a": {"198.51.100.1", "198.51.100.3", "198.51.100.6"},
        "b": {"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.5", "198.51.100.6"},
    }
