"""`manage.py import_events` on real JSON Lines and EVTX files from ../shared/data/windows."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from evtx import PyEvtxParser

from agents.services import register_agent
from events.management.commands.import_events import Command
from events.models import SecurityEvent
from tests.test_agents_helpers import WINDOWS_DATA, jsonl_records

SPRAY = WINDOWS_DATA / "attacks" / "eas_kerberos_password_spray_4771.jsonl"
EVTX = WINDOWS_DATA / "evtx" / "Security_short_selected.evtx"


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_events", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_importing_a_real_jsonl_file_stores_every_record_and_summarizes():
    records = jsonl_records("attacks/eas_kerberos_password_spray_4771.jsonl")
    out, err = run(SPRAY)
    assert f"{len(records)} read, {len(records)} stored, 0 duplicates, 0 skipped" in out
    assert err == ""
    stored = SecurityEvent.objects.order_by("agent_record_id")
    assert [e.raw for e in stored] == sorted(records, key=lambda r: r["EventRecordID"])
    assert {e.event_code for e in stored} == {r["EventID"] for r in records}


@pytest.mark.django_db
def test_bad_lines_are_reported_with_their_line_number_and_skipped(tmp_path):
    good = SPRAY.read_text().splitlines()[:3]
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join([good[0], "{not json", good[1], "", '{"EventID": "x", "Computer": "A"}', good[2]])
        + "\n"
    )
    out, err = run(path)
    assert "5 read, 3 stored, 0 duplicates, 2 skipped" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:2: skipped line: invalid JSON")
    assert lines[1].startswith(f"{path}:5: skipped line: event_code:")
    assert SecurityEvent.objects.count() == 3


@pytest.mark.django_db
def test_importing_an_evtx_file_stores_its_records():
    expected = [
        json.loads(r["data"])["Event"]["System"] for r in PyEvtxParser(str(EVTX)).records_json()
    ]
    out, _err = run(EVTX)
    assert f"{len(expected)} read, {len(expected)} stored" in out
    stored = SecurityEvent.objects.order_by("agent_record_id")
    assert [(e.agent_record_id, e.event_code, e.computer) for e in stored] == sorted(
        (s["EventRecordID"], s["EventID"], s["Computer"]) for s in expected
    )
    assert all(e.raw["Event"]["System"]["EventRecordID"] == e.agent_record_id for e in stored)


@pytest.mark.django_db
def test_reimport_for_an_agent_stores_nothing_twice():
    agent, _token = register_agent(hostname="DC-IMPORT")
    run(EVTX, "--agent", agent.agent_id)
    out, _err = run(EVTX, "--agent", agent.agent_id)
    assert "0 stored, 7 duplicates" in out
    assert SecurityEvent.objects.filter(agent=agent).count() == 7


@pytest.mark.django_db
def test_several_files_get_a_total_and_small_batches_still_store_everything(tmp_path):
    out, _err = run(SPRAY, EVTX, "--batch-size", "2")
    assert "Total: 19 read, 19 stored, 0 duplicates, 0 skipped" in out
    assert SecurityEvent.objects.count() == 19


@pytest.mark.django_db
def test_a_json_array_file_as_powershell_writes_it_is_imported(tmp_path):
    path = tmp_path / "winevent.json"
    records = [
        {"Id": 4625, "MachineName": "WS-5", "TimeCreated": "/Date(1595449776414)/",
         "RecordId": n, "LogName": "Security", "Level": 0, "Properties": []}
        for n in (1, 2)
    ]  # fmt: skip
    path.write_text(json.dumps(records), encoding="utf-8-sig")
    out, _err = run(path)
    assert "2 read, 2 stored" in out
    assert set(SecurityEvent.objects.values_list("computer", "event_code")) == {("WS-5", 4625)}


@pytest.mark.django_db
def test_records_without_a_computer_take_the_computer_option(tmp_path):
    path = tmp_path / "nocomputer.jsonl"
    path.write_text('{"EventID": 4624, "TimeCreated": "2024-01-01T00:00:00Z"}\n')
    out, err = run(path)
    assert "1 skipped" in out and "computer" in err
    out, _err = run(path, "--computer", "HOST-9")
    assert "1 stored" in out
    assert SecurityEvent.objects.get().computer == "HOST-9"


@pytest.mark.django_db
def test_a_missing_file_or_unknown_agent_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "absent.jsonl")
    with pytest.raises(CommandError, match="no such agent"):
        run(SPRAY, "--agent", "not-a-uuid")


@pytest.mark.django_db
def test_a_file_that_is_not_evtx_is_reported_not_a_traceback(tmp_path):
    path = tmp_path / "fake.evtx"
    path.write_bytes(b"this is not an event log")
    out, err = run(path)
    assert "1 skipped" in out and "EVTX" in err


def test_help_explains_formats_and_options():
    text = Command().create_parser("manage.py", "import_events").format_help()
    for needle in ("JSON Lines", ".evtx", "Get-WinEvent", "--batch-size", "--agent", "line"):
        assert needle in text
