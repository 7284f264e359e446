"""Replaying the real Windows logs of ../shared/data/windows raises the right alerts.

The files are read from the shared folder at test time (never copied here). Each goes through
the ingestion path (normalize_record → create_events in batches of 500 → on-commit detection),
with all 21 SigmaHQ rules of ../shared/data/sigma loaded. Users: none (detection is the system).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from alerts.detection.replay import ingest
from alerts.models import Alert
from tests.detection_helpers import DATA, fresh_detection

WINDOWS = DATA / "windows"
ATTACKS = WINDOWS / "attacks" / "eas_credaccess_latmove_security.jsonl"
SPRAY = WINDOWS / "attacks" / "eas_kerberos_password_spray_4771.jsonl"
LSASS = WINDOWS / "attacks" / "eas_lsass_dumping_sysmon.jsonl"
BENIGN = [
    WINDOWS / "benign" / "evtxrs_security_background_A.jsonl",
    WINDOWS / "benign" / "evtxrs_security_background_B.jsonl",
]
DCSYNC_EVTX = WINDOWS / "evtx" / "CA_DCSync_4662.evtx"


@pytest.fixture(autouse=True)
def detection_namespace(settings):
    with fresh_detection(settings, sigma_dir=str(DATA / "sigma")):
        yield


def replay(path: Path, capture) -> None:
    with capture(execute=True):
        ingest(path)


def totals(prefix: str = "builtin.") -> dict[str, dict[str, int]]:
    """{rule: {host: summed occurrence_count}} of the alerts raised by rules with this prefix."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for alert in Alert.objects.filter(rule_id__startswith=prefix):
        hosts = found[alert.rule_id]
        hosts[alert.hostname] = hosts.get(alert.hostname, 0) + alert.occurrence_count
    return dict(found)


def alerts_per_rule(prefix: str = "builtin.") -> Counter:
    return Counter(
        Alert.objects.filter(rule_id__startswith=prefix).values_list("rule_id", flat=True)
    )


def events_by_host(path: Path, event_id: int) -> dict[str, int]:
    """Independent count straight from the JSON Lines file."""
    counts: Counter = Counter()
    with path.open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["EventID"] == event_id:
                counts[record["Computer"]] += 1
    return dict(counts)


@pytest.mark.django_db
def test_credential_access_and_lateral_movement_capture_raises_the_expected_alerts(
    django_capture_on_commit_callbacks,
):
    replay(ATTACKS, django_capture_on_commit_callbacks)

    assert totals() == {
        # Mimikatz lsadump::dcsync by Administrator: three 4662 with replication GUIDs.
        "builtin.dcsync": {"DC1.insecurebank.local": 3},
        "builtin.audit_log_cleared": events_by_host(ATTACKS, 1102),
        # Two fake computer accounts named "$" (DE_Fake_ComputerAccount_4720).
        "builtin.user_created": {"01566s-win16-ir.threebeesco.com": 2},
        # Guest and NETWORK SERVICE added to Administrators.
        "builtin.privileged_group_add": {"MSEDGEWIN10": 2},
        # WMIC /user:administrator from PC01 to WIN-77LTAPHIQ1R.
        "builtin.explicit_credentials_remote": {"PC01.example.corp": 3},
        # sekurlsa::pth: logon type 9 by seclogo.
        "builtin.pass_the_hash": {"PC01.example.corp": 1},
        "builtin.admin_share_access": {
            "01566s-win16-ir.threebeesco.com": 6,
            "IEWIN7": 6,
            "PC01.example.corp": 27,
            "WIN-77LTAPHIQ1R.example.corp": 7,
        },
    }
    per_rule = alerts_per_rule()
    assert per_rule["builtin.dcsync"] == 1  # three events, one alert
    assert per_rule["builtin.user_created"] == 1
    assert per_rule["builtin.privileged_group_add"] == 2  # two different members
    dcsync = Alert.objects.get(rule_id="builtin.dcsync")
    assert (dcsync.severity, dcsync.category, dcsync.mitre_techniques) == (
        5,
        "credential_access",
        ["T1003.006"],
    )
    assert dcsync.events.count() == 3
    # Only one 4625 in the capture: no brute force, no spray.
    assert "builtin.brute_force" not in per_rule
    assert "builtin.password_spray" not in per_rule


@pytest.mark.django_db
def test_credential_access_capture_fires_the_sigma_rules_that_fit_it(
    django_capture_on_commit_callbacks,
):
    replay(ATTACKS, django_capture_on_commit_callbacks)
    by_title: dict[str, int] = Counter()  # events each Sigma rule detected
    own: set[str] = set()  # Sigma rules with alerts of their own
    for alert in Alert.objects.filter(rule_id__startswith="sigma:"):
        by_title[alert.title] += alert.occurrence_count
        own.add(alert.title)
    folded: dict[str, set[str]] = defaultdict(set)  # Sigma rule: built-in rules it joined
    for alert in Alert.objects.filter(rule_id__startswith="builtin."):
        for also in alert.also_matched:
            by_title[also["name"]] += len(also["event_ids"])
            folded[also["name"]].add(alert.rule_id)
    assert by_title == {
        "Mimikatz DC Sync": 3,
        "Powerview Add-DomainObjectAcl DCSync AD Extend Right": 18,
        "Security Event Log Cleared": 11,
        "Hidden Local User Creation": 2,
        "New or Renamed User Account with '$' Character": 2,
        "User Added to Local Administrator Group": 2,
        "Successful Overpass the Hash Attempt": 1,
        "Pass the Hash Activity 2": 1,
        "Outgoing Logon with New Credentials": 1,
        "RottenPotato Like Attack Pattern": 1,
        "LSASS Access From Non System Account": 1,
        # AccessList "%%4416 %%4417" read as "ReadData, WriteData": the rule's `Accesses`.
        "Remote Task Creation via ATSVC Named Pipe": 1,
    }
    # Those that saw the very events a built-in rule alerted on (same ATT&CK technique family)
    # are recorded on its alert instead of raising their own.
    assert folded == {
        "Mimikatz DC Sync": {"builtin.dcsync"},
        "Security Event Log Cleared": {"builtin.audit_log_cleared"},
        "Hidden Local User Creation": {"builtin.user_created"},
        "User Added to Local Administrator Group": {"builtin.privileged_group_add"},
        "Successful Overpass the Hash Attempt": {"builtin.pass_the_hash"},
        "Pass the Hash Activity 2": {"builtin.pass_the_hash"},
        "Outgoing Logon with New Credentials": {"builtin.pass_the_hash"},
    }
    assert not own & set(folded)
    # A different technique (T1036, masquerading) on the same 4720s: an alert of its own.
    assert "New or Renamed User Account with '$' Character" in own
    dc_sync = Alert.objects.get(rule_id="builtin.dcsync")
    [also] = dc_sync.also_matched
    assert also["id"] == "sigma:611eab06-a145-4dfa-a295-3ccc5c20f59a"
    assert sorted(also["event_ids"]) == sorted(dc_sync.events.values_list("pk", flat=True))


@pytest.mark.django_db
def test_kerberos_password_spray_is_one_spray_alert_with_every_attempt(
    django_capture_on_commit_callbacks,
):
    replay(SPRAY, django_capture_on_commit_callbacks)
    assert totals() == {
        # 2 × 4771 (bad password) + 7 × 4768 failing with 0x6 (unknown user), one source.
        "builtin.password_spray": {"01566s-win16-ir.threebeesco.com": 9},
        "builtin.audit_log_cleared": {"01566s-win16-ir.threebeesco.com": 1},
    }
    spray = Alert.objects.get(rule_id="builtin.password_spray")
    assert spray.dedup_key == "builtin.password_spray|172.16.66.1"
    assert (spray.category, spray.mitre_techniques) == ("password_spray", ["T1110", "T1110.003"])
    assert spray.events.count() == 9


@pytest.mark.django_db
def test_lsass_dumping_capture_raises_credential_dumping_alerts_per_host(
    django_capture_on_commit_callbacks,
):
    replay(LSASS, django_capture_on_commit_callbacks)
    assert totals() == {
        "builtin.lsass_access": {
            "PC04.example.corp": 3,  # mimikatz, procdump, taskmgr
            "alice.insecurebank.local": 8,  # Dumpert, rundll32 + Dumpert DLL, AndrewSpecial
            "LAPTOP-JU4M3I0E": 3,  # procdump, procdump64
            "IEWIN7": 1,  # voice_mail.msg.exe
        }
    }
    # MSEDGEWIN10's rundll32 opened notepad.exe, not lsass: nothing there.
    assert not Alert.objects.filter(hostname="MSEDGEWIN10").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.stem)
def test_benign_office_logs_raise_no_brute_force_or_spray(path, django_capture_on_commit_callbacks):
    replay(path, django_capture_on_commit_callbacks)
    per_rule = alerts_per_rule("")
    assert per_rule["builtin.brute_force"] == 0
    assert per_rule["builtin.password_spray"] == 0
    assert per_rule["sigma:34fb5c3a-2ff6-487d-bfa3-717763f30b2c"] == 0  # Sigma brute force
    # Background B's 15 failed logons are scattered: nothing about logons fires at all.
    assert not Alert.objects.filter(category__in=["brute_force", "password_spray"]).exists()


@pytest.mark.django_db
def test_an_evtx_file_replays_like_its_json_lines_twin(django_capture_on_commit_callbacks):
    replay(DCSYNC_EVTX, django_capture_on_commit_callbacks)
    assert totals() == {"builtin.dcsync": {"DC1.insecurebank.local": 3}}
    # Mimikatz DC Sync saw the same three events: recorded on the DCSync alert.
    assert totals("sigma:") == {}
    [also] = Alert.objects.get(rule_id="builtin.dcsync").also_matched
    assert (also["id"], len(also["event_ids"])) == (
        "sigma:611eab06-a145-4dfa-a295-3ccc5c20f59a",
        3,
    )
