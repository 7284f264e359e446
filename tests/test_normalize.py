"""Windows records in the shapes agents really send, normalized into event fields.

Samples are real records from ../shared/data/windows (read at test time), and the same records
re-shaped the way Get-WinEvent | ConvertTo-Json, the evtx parser, xmltodict and Winlogbeat
print them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from evtx import PyEvtxParser

from events.ingest import prepare
from events.normalize import detect_shape, event_fields, normalize_record, windows_severity
from tests.test_agents_helpers import WINDOWS_DATA, jsonl_records

JSONL_FILES = [
    "benign/evtxrs_security_background_A.jsonl",
    "benign/evtxrs_security_background_B.jsonl",
    "attacks/eas_credaccess_latmove_security.jsonl",
    "attacks/eas_kerberos_password_spray_4771.jsonl",
    "attacks/eas_lsass_dumping_sysmon.jsonl",
]
# System fields of the flat export; everything else but _source_file is EventData.
SYSTEM = {
    "EventID", "Computer", "Channel", "Provider_Name", "Provider_Guid", "TimeCreated",
    "EventRecordID", "Level", "Task", "Opcode", "Keywords", "Version", "ExecutionProcessID",
    "ExecutionThreadID", "Security_UserID", "ActivityID", "_source_file",
}  # fmt: skip


def first(relative: str, **match) -> dict:
    return next(
        r
        for r in jsonl_records(relative)
        if all(r.get(key) == value for key, value in match.items())
    )


def evtx_records(name: str) -> list[dict]:
    parser = PyEvtxParser(str(WINDOWS_DATA / "evtx" / name))
    return [json.loads(record["data"]) for record in parser.records_json()]


def as_get_winevent(flat: dict, names: list[str], time: str) -> dict:
    """A flat record as `Get-WinEvent | ConvertTo-Json` prints it (PowerShell 5.1)."""
    keywords = int(flat["Keywords"], 16)
    return {
        "Id": flat["EventID"],
        "Version": flat["Version"],
        "Level": flat["Level"],
        "Task": flat["Task"],
        "Opcode": flat["Opcode"],
        "Keywords": keywords - (1 << 64) if keywords >= 1 << 63 else keywords,
        "RecordId": flat["EventRecordID"],
        "ProviderName": flat["Provider_Name"],
        "ProviderId": flat["Provider_Guid"],
        "LogName": flat["Channel"],
        "ProcessId": flat["ExecutionProcessID"],
        "ThreadId": flat["ExecutionThreadID"],
        "MachineName": flat["Computer"],
        "TimeCreated": time,
        "LevelDisplayName": "Information",
        "Message": "An account was successfully logged on.\r\n\r\nSubject: ...",
        "KeywordsDisplayNames": ["Audit Success"],
        "Properties": [{"Value": flat[name]} for name in names],
    }


def as_winlogbeat(flat: dict) -> dict:
    data = {k: v for k, v in flat.items() if k not in SYSTEM}
    return {
        "@timestamp": flat["TimeCreated"],
        "event": {"code": str(flat["EventID"]), "provider": flat["Provider_Name"]},
        "host": {"name": flat["Computer"].split(".")[0]},
        "log": {"level": "information"},
        "message": "An account was successfully logged on.",
        "winlog": {
            "event_id": str(flat["EventID"]),
            "computer_name": flat["Computer"],
            "channel": flat["Channel"],
            "provider_name": flat["Provider_Name"],
            "record_id": flat["EventRecordID"],
            "keywords": ["Audit Success"],
            "process": {"pid": flat["ExecutionProcessID"], "thread": {"id": 4}},
            "event_data": {k: str(v) for k, v in data.items()},
        },
    }


@pytest.mark.django_db
@pytest.mark.parametrize("relative", JSONL_FILES)
def test_every_real_flat_record_normalizes_into_a_valid_event(relative):
    records = jsonl_records(relative)
    prepared = prepare(records)
    assert prepared.errors == []
    assert len(prepared.items) == len(records)
    for record, item in zip(records, prepared.items, strict=True):
        assert item["raw"] == record
        assert item["event_code"] == record["EventID"]
        assert item["computer"] == record["Computer"]
        assert item["agent_record_id"] == record["EventRecordID"]
        assert 1 <= item["severity"] <= 5


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("security.evtx", "benign/evtxrs_security_background_A.jsonl"),
        ("CA_DCSync_4662.evtx", "attacks/eas_credaccess_latmove_security.jsonl"),
    ],
)
def test_nested_evtx_json_gives_the_same_fields_as_the_flat_export(name, source):
    flat = {(r["Computer"], r["EventRecordID"]): r for r in jsonl_records(source)}
    compared = 0
    for record in evtx_records(name):
        fields = event_fields(record)
        expected = flat.get((fields["Computer"], fields["EventRecordID"]))
        if expected is None:
            continue
        assert fields == {k: v for k, v in expected.items() if k != "_source_file"}
        compared += 1
    assert compared >= 1 if name.startswith("CA_") else compared == len(flat)


def test_nested_evtx_keeps_the_original_and_fills_the_event_fields():
    record = evtx_records("Security_short_selected.evtx")[0]
    item = normalize_record(record)
    assert detect_shape(record) == "evtx"
    assert item["raw"] is record
    assert item["event_code"] == 5152 and item["computer"] == "temporal"
    assert item["agent_record_id"] == 319457771
    assert item["timestamp"] == datetime(2016, 6, 29, 15, 24, 34, 346000, tzinfo=UTC)
    assert item["source_ip"] == "23.94.153.202"
    assert item["severity"] == 2  # WFP drop: an audit failure, but firewall noise (table)


def test_userdata_fields_are_flattened_and_never_overwrite_system_fields():
    record = {
        "Event": {
            "System": {"EventID": 1108, "Computer": "WIN-1", "EventRecordID": 119, "Level": 2},
            "UserData": {
                "EventProcessingFailure": {
                    "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004"},
                    "Error": {"#attributes": {"Code": 15007}},
                    "EventID": 4647,
                    "PublisherID": "Microsoft-Windows-Security-Auditing",
                }
            },
        }
    }
    fields = event_fields(record)
    assert fields["EventID"] == 1108 and fields["UserData_EventID"] == 4647
    assert fields["PublisherID"] == "Microsoft-Windows-Security-Auditing"
    assert normalize_record(record)["severity"] == 4  # Level 2 = Error


def test_xmltodict_shape_with_named_data_elements():
    record = {
        "Event": {
            "System": {
                "Provider": {"@Name": "Microsoft-Windows-Security-Auditing"},
                "EventID": {"@Qualifiers": "", "#text": "4625"},
                "TimeCreated": {"@SystemTime": "2024-03-01T10:00:00.1234567Z"},
                "EventRecordID": "99",
                "Level": "0",
                "Keywords": "0x8010000000000000",
                "Channel": "Security",
                "Computer": "WS-9",
            },
            "EventData": {
                "Data": [
                    {"@Name": "TargetUserName", "#text": "alice"},
                    {"@Name": "IpAddress", "#text": "10.0.0.5"},
                    {"@Name": "LogonType", "#text": "3"},
                ]
            },
        }
    }
    item = normalize_record(record)
    assert (item["event_code"], item["agent_record_id"], item["computer"]) == (4625, 99, "WS-9")
    assert (item["user_name"], item["source_ip"]) == ("alice", "10.0.0.5")
    assert item["timestamp"] == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert event_fields(record)["LogonType"] == "3"


@pytest.mark.parametrize(
    "time",
    ["/Date(1557281443487)/", "2019-05-08T04:10:43.4870000+02:00"],
    ids=["powershell-5.1", "powershell-7"],
)
def test_get_winevent_json_of_a_real_logon_maps_its_positional_properties(time):
    flat = first("attacks/eas_credaccess_latmove_security.jsonl", EventID=4624)
    names = [k for k in flat if k not in SYSTEM]
    record = as_get_winevent(flat, names, time)
    assert detect_shape(record) == "get_winevent"
    fields = event_fields(record)
    for name in names:  # the positional values got their Windows names back
        assert fields[name] == flat[name], name
    assert fields["Keywords"] == flat["Keywords"]
    item = normalize_record(record)
    assert item["timestamp"] == datetime(2019, 5, 8, 2, 10, 43, 487000, tzinfo=UTC)
    assert (item["computer"], item["event_code"]) == (flat["Computer"], 4624)
    assert item["agent_record_id"] == flat["EventRecordID"]
    assert item["user_name"] == flat["TargetUserName"]
    assert item["message"].startswith("An account was successfully logged on.")
    assert item["raw"] is record


def test_get_winevent_with_an_unknown_template_keeps_values_as_params():
    record = {"Id": 4999, "MachineName": "WS-1", "Properties": [{"Value": "a"}, "b"]}
    fields = event_fields(record)
    assert (fields["Param1"], fields["Param2"]) == ("a", "b")


@pytest.mark.parametrize("dotted", [False, True], ids=["nested", "dotted-keys"])
def test_winlogbeat_records_are_normalized(dotted):
    flat = first("attacks/eas_kerberos_password_spray_4771.jsonl", EventID=4771)
    record = as_winlogbeat(flat)
    if dotted:
        record = {
            "@timestamp": record["@timestamp"],
            "log.level": "information",
            "winlog.event_id": record["winlog"]["event_id"],
            "winlog.computer_name": flat["Computer"],
            "winlog.record_id": flat["EventRecordID"],
            "winlog.event_data": record["winlog"]["event_data"],
        }
    assert detect_shape(record) == "winlogbeat"
    item = normalize_record(record)
    assert (item["event_code"], item["computer"]) == (4771, flat["Computer"])
    assert item["agent_record_id"] == flat["EventRecordID"]
    assert item["user_name"] == flat["TargetUserName"]
    assert item["source_ip"] == flat["IpAddress"]
    assert item["severity"] == 3
    assert event_fields(record)["Status"] == flat["Status"]


@pytest.mark.parametrize(
    ("fields", "severity"),
    [
        ({"EventID": 1102, "Level": 4}, 5),  # the code table wins over the level
        ({"EventID": 4624, "Level": 0, "Keywords": "0x8020000000000000"}, 2),  # LogAlways
        ({"EventID": 4776, "Level": 0, "Keywords": "0x8010000000000000"}, 3),  # audit failure
        ({"EventID": 1, "Level": 1}, 5),
        ({"EventID": 1, "Level": 2}, 4),
        ({"EventID": 1, "Level": 3}, 3),
        ({"EventID": 1, "Level": 4}, 1),
        ({"EventID": 1, "Level": 5}, 1),
        ({"EventID": 1, "LevelDisplayName": "Warning"}, 3),
        ({"EventID": 1, "KeywordsDisplayNames": ["Audit Failure"]}, 3),
        ({"EventID": 1}, 2),
    ],
)
def test_windows_levels_map_to_severity_by_the_documented_table(fields, severity):
    assert windows_severity(fields) == severity


def test_api_fields_pass_through_with_record_id_renamed():
    item = normalize_record(
        {"computer": "WS-1", "event_code": 4625, "severity": 3, "message": "m",
         "source_type": "Windows Security", "record_id": "42"}
    )  # fmt: skip
    assert item["agent_record_id"] == 42 and "record_id" not in item


def test_api_event_with_a_windows_raw_record_gets_its_user_and_address():
    raw = first("attacks/eas_kerberos_password_spray_4771.jsonl", EventID=4771)
    item = normalize_record({"computer": "DC", "event_code": 4771, "raw": raw})
    assert (item["user_name"], item["source_ip"]) == (raw["TargetUserName"], raw["IpAddress"])


@pytest.mark.django_db
def test_an_unreadable_timestamp_is_reported_against_the_timestamp_field():
    prepared = prepare([{"EventID": 4624, "Computer": "WS-1", "TimeCreated": "yesterday"}])
    assert prepared.items == []
    assert [(index, list(errors)) for index, errors in prepared.errors] == [(0, ["timestamp"])]
