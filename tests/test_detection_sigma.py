"""Sigma rules: the in-process matcher agrees with pySigma's own SQLite backend on real data.

The reference: each SigmaHQ rule of ../shared/data/sigma converted by pySigma-backend-sqlite and
run on the real Windows logs loaded into an in-memory SQLite table. Our engine sees the same
files through ingestion (normalize_record → create_events → on-commit detection → alerts), and
the events linked to each rule's alerts are compared with the rows SQLite returns:

- on the records as they are, every event SQLite matches is matched here (we may match more:
  that is what the real-data normalization is for);
- on the records normalized the way the engine reads them (values stripped, `%%` tokens
  rendered, case-insensitive text comparison), the sets are identical.

Users: `admin` (group admin) from conftest, for the admin page.
"""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from alerts.detection.engine import get_engine, reset_engine
from alerts.detection.fields import FIELD_ALIASES, FieldView, _alternatives, _text
from alerts.detection.replay import read_records
from alerts.detection.sigma import load_rules
from alerts.models import Alert
from alerts.models import SigmaRule as SigmaRuleRow
from events.normalize import normalize_record
from events.services import create_events
from tests.detection_helpers import DATA, SIGMA_DIR, fresh_detection

FILES = [
    DATA / "windows" / "attacks" / "eas_credaccess_latmove_security.jsonl",
    DATA / "windows" / "attacks" / "eas_kerberos_password_spray_4771.jsonl",
    DATA / "windows" / "attacks" / "eas_lsass_dumping_sysmon.jsonl",
    DATA / "windows" / "benign" / "evtxrs_security_background_A.jsonl",
    DATA / "windows" / "benign" / "evtxrs_security_background_B.jsonl",
]
BRUTE_FORCE_CORRELATION = "sigma:34fb5c3a-2ff6-487d-bfa3-717763f30b2c"


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=str(SIGMA_DIR)):
        yield


# --- the reference: pySigma's SQLite backend ----------------------------------------------------
def identity(record: dict) -> tuple:
    return (record.get("_source_file"), record.get("EventRecordID"), record["Computer"])


def _normalized(value):
    """A value as the engine reads it: stripped, `%%` tokens rendered (case is left to NOCASE)."""
    text = _text(value)
    if text is None or isinstance(value, int | float):
        return value
    return _alternatives(text)[1][-1]


def sqlite_logs(records: list[dict], *, normalized: bool) -> sqlite3.Connection:
    """An in-memory `logs` table, one column per field (names are case-insensitive in SQLite)."""
    columns: dict[str, str] = {}
    rows = []
    for record in records:
        row: dict[str, object] = {"timestamp": record.get("TimeCreated")}
        for name, value in record.items():
            key = name.lower()
            columns.setdefault(key, name)
            if isinstance(value, dict | list):
                value = json.dumps(value)
            row.setdefault(key, _normalized(value) if normalized else value)
        if normalized:  # the engine's field-name aliases (Accesses is AccessList)
            for alias, name in FIELD_ALIASES.items():
                if name in row:
                    columns.setdefault(alias, alias)
                    row.setdefault(alias, row[name])
        rows.append(row)
    columns.setdefault("timestamp", "timestamp")
    names = list(columns)
    kind = " TEXT COLLATE NOCASE" if normalized else ""
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, lambda p, v: v is not None and re.search(p, str(v)) is not None)
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{columns[n]}"{kind}' for n in names) + ")")
    quoted = ", ".join(f'"{columns[n]}"' for n in names)
    marks = ", ".join("?" for _ in names)
    insert = f"INSERT INTO logs ({quoted}) VALUES ({marks})"  # noqa: S608 - names from test data
    db.executemany(insert, [[row.get(n) for n in names] for row in rows])
    return db


def run(db: sqlite3.Connection, query: str) -> list:
    """Run a query; a field no record has becomes an all-NULL column, as in a real log table."""
    while True:
        try:
            return db.execute(query).fetchall()
        except sqlite3.OperationalError as exc:
            missing = re.fullmatch(r"no such column: (\w+)", str(exc))
            if not missing:
                raise
            db.execute(f'ALTER TABLE logs ADD COLUMN "{missing.group(1)}"')


def sigma_rules() -> list[SigmaRule]:
    paths = sorted(str(p) for p in SIGMA_DIR.glob("*.yml"))
    collection = SigmaCollection.load_ruleset(paths, collect_errors=True)
    return [rule for rule in collection.rules if isinstance(rule, SigmaRule)]


def sqlite_matches(db: sqlite3.Connection, records: list[dict]) -> dict[str, set]:
    """{rule_id: identities of matched records} for every rule the backend converts."""
    backend = sqliteBackend()
    found: dict[str, set] = {}
    for rule in sigma_rules():
        try:
            queries = backend.convert_rule(rule)
        except Exception:  # noqa: BLE001, S112 - refused rules are checked in the loading test
            continue
        if not queries:
            continue  # a correlation's base rule: no alert of its own
        rows = set()
        for query in queries:
            rows |= {rowid for (rowid,) in run(db, query.replace("SELECT *", "SELECT rowid"))}
        found[f"sigma:{rule.id}"] = {identity(records[rowid - 1]) for rowid in rows}
    return found


def engine_matches() -> dict[str, set]:
    """The events each Sigma rule matched: those of its own alerts, and those it matched on a
    built-in alert it was folded into (`also_matched`: one alert for one detection)."""
    found: dict[str, set] = defaultdict(set)
    for alert in Alert.objects.filter(rule_id__startswith="sigma:").prefetch_related("events"):
        found[alert.rule_id] |= {identity(event.raw) for event in alert.events.all()}
    for alert in Alert.objects.exclude(also_matched=[]).prefetch_related("events"):
        raws = {event.pk: event.raw for event in alert.events.all()}
        for entry in alert.also_matched:
            found[entry["id"]] |= {identity(raws[pk]) for pk in entry["event_ids"]}
    return found


@pytest.fixture
def replayed(django_capture_on_commit_callbacks) -> list[dict]:
    records = [record for path in FILES for record in read_records(path)]
    items = [normalize_record(record) for record in records]
    with django_capture_on_commit_callbacks(execute=True):
        for start in range(0, len(items), 500):
            create_events(items[start : start + 500])
    assert len({identity(r) for r in records}) == len(records)  # identities are unique
    return records


@pytest.mark.django_db
def test_every_event_sqlite_matches_on_the_raw_records_is_matched_here_too(replayed):
    reference = sqlite_matches(sqlite_logs(replayed, normalized=False), replayed)
    ours = engine_matches()
    assert len(reference) == 19  # 21 files: one refused (pipe syntax), one correlation base rule
    for rule_id, events in reference.items():
        assert events <= ours.get(rule_id, set()), rule_id
    # Normalization matters on real data: the raw table misses the ATSVC task (`%%4417` is
    # WriteData) that the engine sees.
    atsvc = "sigma:f6de6525-4509-495a-8a82-1f8b0ed73a00"
    assert (len(reference[atsvc]), len(ours[atsvc])) == (0, 1)


@pytest.mark.django_db
def test_on_normalized_records_sqlite_and_the_engine_match_exactly_the_same_events(replayed):
    reference = sqlite_matches(sqlite_logs(replayed, normalized=True), replayed)
    ours = engine_matches()
    for rule_id in reference.keys() | ours.keys():
        assert ours.get(rule_id, set()) == reference.get(rule_id, set()), rule_id
    matched = {rule_id for rule_id, events in reference.items() if events}
    assert len(matched) >= 12  # not a vacuous comparison
    assert sum(len(events) for events in reference.values()) >= 45


# --- correlation rules --------------------------------------------------------------------------
def failed_logon(second: int, ip: str, account: str = "Administrator") -> dict:
    moment = datetime(2020, 7, 22, 20, 0, tzinfo=UTC) + timedelta(seconds=second)
    return {
        "EventID": 4625,
        "Computer": "DC-01",
        "Channel": "Security",
        "TimeCreated": moment.isoformat().replace("+00:00", "Z"),
        "EventRecordID": 1000 + second,
        "_source_file": f"synthetic-{ip}",
        "TargetUserName": account,
        "TargetDomainName": "EXAMPLE",
        "IpAddress": ip,
        "LogonType": 3,
        "Status": "0xc000006d",
    }


@pytest.mark.django_db
def test_the_brute_force_correlation_fires_on_the_same_events_as_pysigma_sqlite(
    django_capture_on_commit_callbacks,
):
    records = (
        [failed_logon(s, "203.0.113.5") for s in range(0, 120, 10)]  # 12 in two minutes
        + [failed_logon(s, "203.0.113.6") for s in (0, 1, 2, 3, 299)]  # 5 within 300 s
        + [failed_logon(s, "203.0.113.7") for s in (0, 1, 2, 3, 301)]  # never 5 in 300 s
        + [failed_logon(s * 360, "203.0.113.8") for s in range(6)]  # one every six minutes
        + [failed_logon(s, "-") for s in range(500, 505)]  # console: "-" is a group value
    )
    records.sort(key=lambda r: r["TimeCreated"])
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record(r) for r in records])

    db = sqlite_logs(records, normalized=True)
    path = SIGMA_DIR / "correlation_win_security_failed_logon_bruteforce_single_account.yml"
    [query] = sqliteBackend().convert(SigmaCollection.from_yaml(path.read_text()))
    evidence = set()
    for row in db.execute(query):
        evidence |= {int(e.split(":")[1]) for e in json.loads(row[8])}  # event_ids column
    reference = {identity(records[rowid - 1]) for rowid in evidence}

    alerts = Alert.objects.filter(rule_id=BRUTE_FORCE_CORRELATION)
    ours = {identity(e.raw) for alert in alerts for e in alert.events.all()}
    assert ours == reference
    assert sorted((a.dedup_key.rsplit("|", 1)[1], a.occurrence_count) for a in alerts) == [
        ("-", 5),
        ("203.0.113.5", 12),
        ("203.0.113.6", 5),
    ]
    # Its base rule never alerts on its own (generate: false).
    assert not Alert.objects.filter(rule_id="sigma:28ed487c-6a7d-42ca-a121-608ce523856c")


# --- loading, errors, enabling -------------------------------------------------------------------
def write_rules(directory: Path, rules: dict[str, str]) -> None:
    for name, text in rules.items():
        (directory / name).write_text(textwrap.dedent(text))


GOOD = """
title: Test failed logon
id: 11111111-1111-1111-1111-111111111111
logsource: {product: windows, service: security}
detection:
    selection:
        EventID: 4625
        Status: '0xC000006D'
        LogonProcessName: NtLmSsp
        ProcessID: '0x1358'
        FailureReason|contains: 'bad password'
    no_address:
        IpAddress:
    condition: selection and no_address
level: high
tags: [attack.credential-access, attack.t1110.001]
"""


def test_rules_that_cannot_be_loaded_are_listed_with_the_reason_and_the_rest_load(tmp_path):
    write_rules(
        tmp_path,
        {
            "good.yml": GOOD,
            "broken.yml": "title: [unclosed\n",
            "placeholder.yml": """
                title: Placeholder
                id: 22222222-2222-2222-2222-222222222222
                logsource: {product: windows, service: security}
                detection:
                    selection: {TargetUserName|expand: '%admins%'}
                    condition: selection
            """,
            "good_copy.yml": GOOD,
            "temporal.yml": """
                title: Temporal
                id: 33333333-3333-3333-3333-333333333333
                correlation:
                    type: temporal
                    rules: [11111111-1111-1111-1111-111111111111]
                    group-by: [IpAddress]
                    timespan: 5m
                    condition: {gte: 0}
            """,
        },
    )
    ruleset = load_rules(tmp_path)
    errors = {entry.path: entry.error for entry in ruleset.entries if entry.error}
    assert set(errors) == {"broken.yml", "good_copy.yml", "placeholder.yml", "temporal.yml"}
    assert errors["good_copy.yml"] == "duplicate rule id: already loaded from good.yml"
    assert "placeholders" in errors["placeholder.yml"]
    assert "temporal conditions other than all of its rules" in errors["temporal.yml"]
    assert [rule.title for rule in ruleset.rules] == ["Test failed logon"]

    real = load_rules(SIGMA_DIR)
    [refused] = [entry for entry in real.entries if entry.error]
    assert refused.path == "win_security_failed_logons_unknown_user_burst.yml"
    assert "pipe syntax" in refused.error
    assert len(real.rules) == 20 and len(real.correlations) == 1


def view(record: dict) -> FieldView:
    return FieldView(None, record)


def test_field_matching_copes_with_what_real_windows_data_looks_like(tmp_path):
    write_rules(tmp_path, {"good.yml": GOOD})
    [rule] = load_rules(tmp_path).rules
    real = {
        "EventID": 4625,
        "Status": "0xc000006d",  # lower-case hex; the rule says 0xC000006D
        "LogonProcessName": "NtLmSsp ",  # trailing space
        "ProcessId": "0x1358",  # the rule says ProcessID
        "FailureReason": "%%2313",  # "Unknown user name or bad password."
        "IpAddress": "-",  # Windows' "no address": a Sigma null
        "Channel": "Security",
    }
    assert rule.applies(view(real))
    assert rule.applies(view({**real, "IpAddress": ""}))
    assert rule.applies(view({k: v for k, v in real.items() if k != "IpAddress"}))
    assert not rule.applies(view({**real, "IpAddress": "10.0.0.5"}))
    assert not rule.applies(view({**real, "Status": "0xc000006a"}))
    assert not rule.applies(view({**real, "Channel": "Microsoft-Windows-Sysmon/Operational"}))
    assert rule.severity == 4
    assert (rule.category, rule.techniques) == ("credential_access", ["T1110.001"])


CLEARED = {  # a Security log cleared (1102), as Windows writes it
    "EventID": 1102,
    "Computer": "DC-01",
    "Channel": "Security",
    "Provider_Name": "Microsoft-Windows-Eventlog",
    "TimeCreated": "2020-07-22T20:29:27Z",
    "SubjectUserName": "a-jbrown",
}


@pytest.mark.django_db
def test_a_rule_disabled_in_the_admin_stops_alerting(django_capture_on_commit_callbacks):
    cleared = CLEARED
    get_engine()  # records the rules found in the database
    row = SigmaRuleRow.objects.get(title="Security Event Log Cleared")
    row.enabled = False
    row.save()
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record(cleared)])
    [alert] = Alert.objects.all()
    assert (alert.rule_id, alert.also_matched) == ("builtin.audit_log_cleared", [])

    row.enabled = True
    row.save()
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record({**cleared, "SubjectUserName": "bob"})])
    # The Sigma rule detects the same event as the built-in rule: one alert, naming both.
    bob = Alert.objects.get(dedup_key__endswith="|bob")
    assert bob.rule_id == "builtin.audit_log_cleared"
    [also] = bob.also_matched
    event = bob.events.get()
    assert also == {
        "id": row.rule_id,
        "name": "Security Event Log Cleared",
        "level": "medium",
        "event_ids": [event.pk],
    }
    assert not Alert.objects.filter(rule_id=row.rule_id).exists()


@pytest.mark.django_db
def test_the_alert_api_names_the_sigma_rules_folded_into_a_built_in_alert(
    analyst, django_capture_on_commit_callbacks
):
    from tests.api_helpers import bearer_client

    cleared = CLEARED
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record(cleared)])
    [alert] = Alert.objects.all()
    response = bearer_client(analyst).get(f"/api/v1/alerts/{alert.alert_id}/")
    assert response.status_code == 200
    data = response.json()
    assert data["rule"]["id"] == "builtin.audit_log_cleared"
    assert data["also_matched_by"] == [
        {
            "id": SigmaRuleRow.objects.get(title="Security Event Log Cleared").rule_id,
            "name": "Security Event Log Cleared",
            "source": "sigma",
            "level": "medium",
            "event_ids": data["event_ids"],
        }
    ]


@pytest.mark.django_db
def test_sigma_rules_command_lists_rules_and_their_load_errors():
    from io import StringIO

    out = StringIO()
    call_command("sigma_rules", "--errors", stdout=out)
    text = out.getvalue()
    assert "win_security_failed_logons_unknown_user_burst.yml" in text
    assert "pipe syntax" in text
    assert "Mimikatz DC Sync" not in text  # --errors lists only the refused ones
    assert SigmaRuleRow.objects.count() == 22
    assert SigmaRuleRow.objects.exclude(error="").count() == 1


SPRAY_BASE = """
title: Failed logon (base)
id: 44444444-4444-4444-4444-444444444444
name: failed_logon_base
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
level: informational
---
title: Many accounts from one source
id: 55555555-5555-5555-5555-555555555555
correlation:
    type: value_count
    rules: [failed_logon_base]
    group-by: [IpAddress]
    timespan: 10m
    condition:
        field: TargetUserName
        gte: 3
level: high
tags: [attack.credential-access, attack.t1110.003]
"""


@pytest.mark.django_db
def test_a_value_count_correlation_counts_distinct_accounts_per_source(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    write_rules(tmp_path, {"spray.yml": SPRAY_BASE})
    settings.SIGMA_RULES_DIR = str(tmp_path)
    reset_engine()
    # One account tried five times: one distinct value, nothing fires.
    records = [failed_logon(s, "198.51.100.9", "alice") for s in range(5)]
    # Then bob and carol: three distinct accounts within ten minutes.
    records += [failed_logon(60, "198.51.100.9", "bob"), failed_logon(90, "198.51.100.9", "carol")]
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record(r) for r in records[:5]])
    assert not Alert.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        create_events([normalize_record(r) for r in records[5:]])
    [alert] = Alert.objects.all()
    assert alert.rule_id == "sigma:55555555-5555-5555-5555-555555555555"
    assert (alert.title, alert.severity, alert.category) == (
        "Many accounts from one source",
        4,
        "credential_access",
    )
    assert alert.occurrence_count == 7  # every failed logon of the qualifying window
    assert alert.dedup_key == "sigma:55555555-5555-5555-5555-555555555555|198.51.100.9"


@pytest.mark.django_db
def test_a_new_rule_file_is_picked_up_without_a_restart(settings, tmp_path):
    settings.SIGMA_RULES_DIR = str(tmp_path)
    settings.DETECTION_CONFIG_TTL_SEC = 0
    write_rules(tmp_path, {"good.yml": GOOD})
    assert [r.title for r in get_engine().sigma.rules] == ["Test failed logon"]
    write_rules(tmp_path, {"spray.yml": SPRAY_BASE})
    engine = get_engine()
    assert sorted(r.title for r in engine.sigma.rules) == [
        "Failed logon (base)",
        "Test failed logon",
    ]
    assert [c.title for c in engine.sigma.correlations] == ["Many accounts from one source"]
    assert get_engine() is engine  # unchanged files: the same compiled engine


def test_keywords_regex_cidr_and_numeric_comparisons_match_like_sigma_says(tmp_path):
    write_rules(
        tmp_path,
        {
            "mixed.yml": r"""
                title: Mixed
                id: 66666666-6666-6666-6666-666666666666
                logsource: {product: windows}
                detection:
                    keywords: ['sekurlsa::']
                    remote:
                        IpAddress|cidr: '10.0.0.0/8'
                    long_name:
                        WorkstationName|re: '^[A-Z0-9]{16}$'
                    high_port:
                        IpPort|gte: 49152
                    condition: keywords and remote and (long_name or high_port)
            """
        },
    )
    [rule] = load_rules(tmp_path).rules
    record = {
        "EventID": 4688,
        "CommandLine": "mimikatz.exe SEKURLSA::logonpasswords",  # keywords: case-insensitive
        "IpAddress": "::ffff:10.1.2.3",  # IPv4-mapped: inside 10.0.0.0/8
        "WorkstationName": "kali",
        "IpPort": "50123",
    }
    assert rule.event_ids is None  # no EventID in the condition: tried on every event
    assert rule.applies(view(record))
    assert not rule.applies(view({**record, "CommandLine": "notepad.exe"}))
    assert not rule.applies(view({**record, "IpAddress": "192.168.1.5"}))
    assert not rule.applies(view({**record, "IpPort": "445"}))
    # The regex keeps Sigma's case-sensitivity: 16 upper-case characters only.
    assert rule.applies(view({**record, "IpPort": "445", "WorkstationName": "ABCDEFGH12345678"}))
    assert not rule.applies(
        view({**record, "IpPort": "445", "WorkstationName": "abcdefgh12345678"})
    )


@pytest.mark.django_db
def test_a_rule_that_raises_on_an_event_never_stops_the_other_rules(
    django_capture_on_commit_callbacks,
):
    from alerts.detection.engine import Engine
    from alerts.detection.sigma import CompiledRule, SigmaRuleSet
    from events.models import SecurityEvent

    def broken(view):
        raise ValueError("a bug in a matcher")

    rule = CompiledRule(
        rule_id="sigma:broken",
        title="Broken",
        severity=3,
        category="sigma",
        techniques=[],
        description="",
        path="broken.yml",
        match=broken,
        event_ids=None,
    )
    cleared = {"EventID": 1102, "Computer": "DC-01", "TimeCreated": "2020-07-22T20:29:27Z"}
    with django_capture_on_commit_callbacks(execute=False):
        create_events([normalize_record(cleared)])
    fired = Engine(SigmaRuleSet(rules=[rule])).process(list(SecurityEvent.objects.all()))
    assert fired == {"builtin.audit_log_cleared": 1}
