"""Logsource semantics: a Sigma rule runs on the log it was written for and on no other.

For every category pySigma's Windows and Sysmon pipelines map, a probe rule (`Marker|contains:
probe`) is loaded and offered the same marker on every log we know; it must fire on its own
(channel, event id) and nowhere else — through `CompiledRule.applies` and through the engine's
dispatch (with the literal pre-filter). The real SigmaHQ rules named in issue 15 are replayed on
the events they used to fire on.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from alerts.detection.dispatch import Dispatch
from alerts.detection.fields import FieldView
from alerts.detection.logsource import (
    SERVICE_CHANNELS,
    SYSMON,
    SYSMON_CATEGORIES,
    WINDOWS_CATEGORIES,
    sources_for,
)
from alerts.detection.sigma import load_rules
from tests.detection_helpers import DATA

FULL = DATA / "sigma-full" / "rules" / "windows"
POWERSHELL = "Microsoft-Windows-PowerShell/Operational"
CLASSIC = "Windows PowerShell"

# Every log the probes are offered: (Channel as Windows writes it, EventID).
LOGS = [
    *(("Microsoft-Windows-Sysmon/Operational", code) for code in range(1, 30)),
    ("Microsoft-Windows-Sysmon/Operational", 255),
    ("Security", 4625),
    ("Security", 4624),
    ("Security", 4688),
    ("Security", 1102),
    ("System", 7045),
    ("Application", 1000),
    (POWERSHELL, 4103),
    (POWERSHELL, 4104),
    (CLASSIC, 400),
    (CLASSIC, 600),
    (CLASSIC, 800),
    ("Microsoft-Windows-WMI-Activity/Operational", 5861),
    ("Microsoft-Windows-Bits-Client/Operational", 59),
]


def expected_logs(category: str) -> set[tuple[str, int]]:
    logs = {(SYSMON, code) for code in SYSMON_CATEGORIES.get(category, ())}
    if category == "process_creation":
        logs.add(("security", 4688))
    if category in WINDOWS_CATEGORIES:
        service, code = WINDOWS_CATEGORIES[category]
        logs |= {(channel, code) for channel in SERVICE_CHANNELS[service]}
    return logs


def probe_rule(directory: Path, logsource: str) -> None:
    (directory / "probe.yml").write_text(
        textwrap.dedent(
            f"""
            title: Probe
            id: 0e0e0e0e-0000-4000-8000-000000000001
            logsource: {logsource}
            detection:
                selection:
                    Marker|contains: probe
                condition: selection
            level: high
            """
        )
    )


def record(channel: str, code: int, **fields) -> dict:
    return {"EventID": code, "Channel": channel, "Computer": "PC-01", "Marker": "a probe", **fields}


def fired_on(rules, logs=LOGS) -> set[tuple[str, int]]:
    dispatch = Dispatch(rules)
    fired = set()
    for channel, code in logs:
        view = FieldView(None, record(channel, code))
        direct = {rule.rule_id for rule in rules if rule.applies(view)}
        dispatched = {rule.rule_id for rule in dispatch.candidates(view) if rule.match(view)}
        assert direct == dispatched, (channel, code)
        if direct:
            fired.add((channel.lower(), code))
    return fired


@pytest.mark.parametrize("category", sorted({*SYSMON_CATEGORIES, *WINDOWS_CATEGORIES}))
def test_a_category_rule_fires_on_its_own_log_and_never_on_another(tmp_path, category):
    probe_rule(tmp_path, f"{{product: windows, category: {category}}}")
    [rule] = load_rules(tmp_path).rules
    logs = LOGS + [(channel, code) for channel, code in expected_logs(category)]
    assert fired_on([rule], logs) == expected_logs(category)


@pytest.mark.parametrize("service", ["security", "system", "sysmon", "powershell", "wmi"])
def test_a_service_rule_fires_on_its_channel_only(tmp_path, service):
    probe_rule(tmp_path, f"{{product: windows, service: {service}}}")
    [rule] = load_rules(tmp_path).rules
    fired = {channel for channel, _ in fired_on([rule])}
    assert fired == set(SERVICE_CHANNELS[service]) & {c.lower() for c, _ in LOGS}


def test_a_product_only_rule_runs_on_every_windows_log(tmp_path):
    probe_rule(tmp_path, "{product: windows}")
    [rule] = load_rules(tmp_path).rules
    assert fired_on([rule]) == {(channel.lower(), code) for channel, code in LOGS}


@pytest.mark.parametrize(
    ("logsource", "reason"),
    [
        ("{product: windows, category: file_access}", "category 'file_access'"),
        ("{product: linux, category: process_creation}", "product 'linux' is not Windows"),
        ("{product: windows, service: nosuchservice}", "service 'nosuchservice' is not mapped"),
    ],
)
def test_a_logsource_that_cannot_be_told_apart_is_refused_with_its_reason(
    tmp_path, logsource, reason
):
    probe_rule(tmp_path, logsource)
    ruleset = load_rules(tmp_path)
    assert ruleset.rules == []
    [entry] = ruleset.entries
    assert reason in entry.error


def test_the_4625_probe_process_creation_rules_never_fire_on_a_failed_logon(tmp_path):
    """Issue 15: a process_creation rule fired on a Security 4625; procdump on a Sysmon 11."""
    shutil.copy(FULL / "process_creation" / "proc_creation_win_sysinternals_procdump.yml", tmp_path)
    [rule] = load_rules(tmp_path).rules
    fields = {"Image": r"C:\Tools\procdump64.exe", "CommandLine": "procdump64.exe -ma lsass.exe"}
    sysmon_1 = record("Microsoft-Windows-Sysmon/Operational", 1, **fields)
    assert rule.applies(FieldView(None, sysmon_1))
    for channel, code in [("Security", 4625), ("Microsoft-Windows-Sysmon/Operational", 11)]:
        assert not rule.applies(FieldView(None, record(channel, code, **fields)))
    # Security 4688 is process creation too, its fields read under Sysmon's names.
    audit = {"NewProcessName": r"C:\Tools\procdump64.exe", "EventID": 4688}
    from alerts.detection.fields import event_view

    class Stored:  # the columns event_view reads from a stored SecurityEvent
        event_code, computer, user_name, source_ip = 4688, "PC-01", "", ""
        raw = record("Security", 4688, **audit)

    assert rule.applies(event_view(Stored()))


def test_an_event_without_a_channel_reads_as_security_unless_it_names_a_provider():
    assert FieldView(None, {"EventID": 4625}).channel == "security"
    etw = {"EventID": 6, "Channel": None, "Provider_Name": "Microsoft-Windows-RPC"}
    assert FieldView(None, etw).channel == ""


def test_create_remote_thread_rules_run_on_sysmon_8_only():
    """Issue 15: a create_remote_thread rule matched a Sysmon 10."""
    [source] = sources_for("windows", "create_remote_thread", None)
    assert (source.channel, source.event_ids) == (SYSMON, frozenset({8}))
