"""Hunting: GET /api/v1/events/?q=, histogram, facets, export, saved searches.

Five events (below) with raw Windows fields; every query-language construct is checked for the
exact set of events it selects. Run on SQLite and on PostgreSQL (DATABASE_URL=postgres://…).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from events.query import QuerySyntaxError, build_search_text, parse
from events.services import create_events
from tests.api_helpers import READERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

NOW = timezone.now().replace(microsecond=0)
T = NOW - timedelta(hours=1)


def _event(name, minutes, **fields):
    item = {
        "computer": "WS-001",
        "event_code": 4624,
        "severity": 2,
        "message": "",
        "source_type": "Windows Security",
        "timestamp": T + timedelta(minutes=minutes),
    }
    item.update(fields)
    return name, item


DATA = [
    _event(
        "logon_admin",
        0,
        computer="DC-01",
        message="An account was successfully logged on",
        user_name="administrator",
        source_ip="10.0.0.5",
        raw={"TargetUserName": "Administrator", "LogonType": 3, "IpAddress": "10.0.0.5"},
    ),
    _event(
        "failed_bob",
        5,
        event_code=4625,
        severity=3,
        message="An account failed to log on",
        user_name="bob",
        source_ip="185.220.101.47",
        raw={"TargetUserName": "bob", "LogonType": 10, "IpAddress": "185.220.101.47"},
    ),
    _event(
        "mimikatz_process",
        10,
        computer="WS-002",
        event_code=4688,
        severity=4,
        message="A new process has been created",
        raw={
            "CommandLine": "C:\\Tools\\Mimikatz.exe sekurlsa::logonpasswords",
            "NewProcessName": "C:\\Tools\\mimikatz.exe",
            "SubjectUserName": "alice",
            "SubjectDomainName": "CORP",
        },
    ),
    _event(
        "script_block",
        15,
        computer="WS-002",
        event_code=4104,
        severity=5,
        message="PowerShell script block: lsass dump",
        raw={"ScriptBlockText": "Invoke-Mimikatz -DumpCreds", "Note": "50% done [x]"},
    ),
    _event(
        "old_service_logon",
        -3 * 24 * 60,
        computer="dc-01",
        severity=1,
        user_name="svc_backup",
        raw={"TargetUserName": "svc_backup", "LogonType": "5"},
    ),
]


@pytest.fixture
def events():
    created = create_events([item for _name, item in DATA]).created
    return {name: event.event_id for (name, _item), event in zip(DATA, created, strict=True)}


def found(clients, events, q, **params) -> set[str]:
    answer = clients["viewer"].get("/api/v1/events/", {"q": q, "page_size": 500, **params})
    assert answer.status_code == 200, answer.json()
    names = {event_id: name for name, event_id in events.items()}
    return {names[row["event_id"]] for row in answer.json()["results"]}


ALL = {"logon_admin", "failed_bob", "mimikatz_process", "script_block", "old_service_logon"}

CASES = [
    # stored fields, any case
    ("computer:dc-01", {"logon_admin", "old_service_logon"}),
    ("COMPUTER:DC-01", set()),  # field names are exact; an unknown name is a raw field
    ("computer:DC-01", {"logon_admin", "old_service_logon"}),
    ("user_name:ADMINISTRATOR", {"logon_admin"}),
    ("source_ip:185.220.101.47", {"failed_bob"}),
    ('source_type:"windows security"', ALL),
    ("event_code:4688", {"mimikatz_process"}),
    ("severity:5", {"script_block"}),
    ("message:failed", {"failed_bob"}),
    ('message:"successfully logged"', {"logon_admin"}),
    # raw Windows fields by name (JSON lookups), any case of the value
    ("TargetUserName:administrator", {"logon_admin"}),
    ("TargetUserName:ADMINISTRATOR", {"logon_admin"}),
    ("LogonType:3", {"logon_admin"}),
    ("LogonType:5", {"old_service_logon"}),  # stored as the string "5"
    ("SubjectDomainName:corp", {"mimikatz_process"}),
    ("TargetUserName:admin", set()),  # a whole value, not a part of it
    # wildcards
    ("CommandLine:*mimikatz*", {"mimikatz_process"}),
    ("CommandLine:c:\\tools\\*", {"mimikatz_process"}),
    ("NewProcessName:*\\mimikatz.exe", {"mimikatz_process"}),
    ("TargetUserName:svc_*", {"old_service_logon"}),
    ("TargetUserName:svc?*", set()),  # `?` is literal, `_` too
    ("TargetUserName:*o*", {"failed_bob", "logon_admin"}),
    ("user_name:a*r", {"logon_admin"}),
    ("computer:ws-*", {"failed_bob", "mimikatz_process", "script_block"}),
    ("CommandLine:*", {"mimikatz_process"}),  # the field exists
    # fields with their own trigram index on PostgreSQL (events.query.INDEXED_RAW_FIELDS)
    ("CommandLine:*SEKURLSA::*", {"mimikatz_process"}),
    ('CommandLine:"c:\\tools\\mimikatz.exe sekurlsa::logonpasswords"', {"mimikatz_process"}),
    ("CommandLine:mimikatz", set()),  # a whole value, not a part of it
    ("NOT CommandLine:*mimikatz*", ALL - {"mimikatz_process"}),  # without the field included
    ("NOT TargetUserName:svc_*", ALL - {"old_service_logon"}),
    ("Note:*50%*", {"script_block"}),  # LIKE's own wildcards are literal
    ("Note:*[x]", {"script_block"}),
    # bare words and phrases: message and every raw value
    ("mimikatz", {"mimikatz_process", "script_block"}),
    ("CORP", {"mimikatz_process"}),
    ("logonpasswords", {"mimikatz_process"}),
    ("185.220.101.47", {"failed_bob"}),
    ('"lsass dump"', {"script_block"}),
    ('"account failed"', {"failed_bob"}),
    ("logon", {"mimikatz_process"}),  # values only: not the LogonType field name
    ('"mimi*"', set()),  # in quotes a star is a star
    ("mimi*tz", {"mimikatz_process", "script_block"}),
    # NOT, AND, OR, parentheses, implicit AND
    ("NOT computer:dc-01", {"failed_bob", "mimikatz_process", "script_block"}),
    ("NOT TargetUserName:bob", ALL - {"failed_bob"}),  # events without the field included
    ("not severity>=2", {"old_service_logon"}),
    ("computer:ws-002 mimikatz", {"mimikatz_process", "script_block"}),
    ("computer:ws-002 AND NOT mimikatz", set()),
    ("(computer:dc-01 OR computer:ws-001) AND severity>=2", {"logon_admin", "failed_bob"}),
    (
        "computer:dc-01 OR computer:ws-001 AND severity>=3",
        {"logon_admin", "failed_bob", "old_service_logon"},
    ),
    ("TargetUserName:(bob OR administrator)", {"logon_admin", "failed_bob"}),
    ("event_code:(4624 OR 4625)", {"logon_admin", "failed_bob", "old_service_logon"}),
    ("event_code:(4624 OR 4625) AND NOT user_name:svc_*", {"logon_admin", "failed_bob"}),
    ("computer:(NOT dc-01)", {"failed_bob", "mimikatz_process", "script_block"}),
    # comparisons
    ("severity>=4", {"mimikatz_process", "script_block"}),
    ("severity>4", {"script_block"}),
    ("severity<=1", {"old_service_logon"}),
    ("severity<2", {"old_service_logon"}),
    ("event_code>4624 event_code<4700", {"failed_bob", "mimikatz_process"}),
    ("severity>= 5", {"script_block"}),
    ("", ALL),
    ("   ", ALL),
]


@pytest.mark.parametrize(("q", "expected"), CASES, ids=[case[0] or "empty" for case in CASES])
def test_every_construct_of_the_query_language_selects_exactly_the_right_events(
    clients, events, q, expected
):
    assert found(clients, events, q) == expected


def test_a_query_combines_with_since_until_and_the_other_filters(clients, events):
    since = (T + timedelta(minutes=1)).isoformat()
    assert found(clients, events, "event_code:(4624 OR 4625)", since=since) == {"failed_bob"}
    until = (T + timedelta(minutes=1)).isoformat()
    assert found(clients, events, "computer:dc-01", until=until) == {
        "logon_admin",
        "old_service_logon",
    }
    assert found(clients, events, "mimikatz", severity_min=5) == {"script_block"}


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        ("computer:", "Expected a value after 'computer:' at position 9"),
        ("(mimikatz OR lsass", "Missing ')' for the '(' opened at position 0"),
        ('"lsass dump', "Unterminated quoted phrase at position 0"),
        ("mimikatz OR", "Expected a search term at position 11"),
        ("mimikatz)", "Unexpected ')' at position 8"),
        ("()", "Empty parentheses at position 0"),
        ("severity>=high", "severity takes a whole number, not 'high' at position 10"),
        (
            "user_name>=3",
            "'>=' compares numbers: use it with event_code or severity at position 11",
        ),
        ("event_code:46*", "event_code takes a whole number, not a pattern at position 11"),
        ("NOT", "Expected a search term at position 3"),
        (":value", "Expected a field name before ':' at position 0"),
        ("a AND AND b", "Unexpected 'AND' at position 6"),
    ],
)
def test_a_syntax_error_is_a_400_on_q_with_the_position(clients, events, q, reason):
    answer = clients["viewer"].get("/api/v1/events/", {"q": q})
    assert answer.status_code == 400
    assert answer.json() == {"q": [reason]}
    for path in ("histogram", "facets?field=computer", "export"):
        answer = clients["viewer"].get(f"/api/v1/events/{path}", {"q": q})
        assert answer.status_code == 400
        assert answer.json() == {"q": [reason]}


def test_the_parser_reads_nested_groups_and_rejects_absurd_nesting():
    assert parse("((a))").value == "a"
    assert parse("((a))").position == 2
    with pytest.raises(QuerySyntaxError, match="nested too deeply"):
        parse("(" * 100 + "a" + ")" * 100)


def test_search_text_holds_every_value_once_in_lowercase_on_its_own_line():
    text = build_search_text(
        {"message": "Two\nlines", "computer": "DC-01"},
        {"Computer": "dc-01", "LogonType": 3, "Nested": {"Deep": ["X", True]}},
    )
    assert text == "\ntwo lines\ndc-01\n3\nx\ntrue\n"


# --- unknown parameters, computer filter ---------------------------------------------------------
@pytest.mark.parametrize("param", ["user_name", "source_ip", "mitre", "computr"])
def test_an_unknown_filter_parameter_is_a_400_naming_it(clients, events, param):
    answer = clients["viewer"].get("/api/v1/events/", {param: "x"})
    assert answer.status_code == 400
    assert list(answer.json()) == [param]
    assert answer.json()[param] == ["Unknown filter parameter."]


def test_hunting_paths_refuse_unknown_parameters_too(clients, events):
    for path in ("histogram/", "facets/?field=computer", "export/"):
        answer = clients["viewer"].get(f"/api/v1/events/{path}", {"page": 2})
        assert answer.status_code == 400
        assert answer.json() == {"page": ["Unknown filter parameter."]}


def test_the_computer_filter_ignores_case(clients, events):
    answer = clients["viewer"].get("/api/v1/events/", {"computer": "DC-01"})
    assert {row["event_id"] for row in answer.json()["results"]} == {
        events["logon_admin"],
        events["old_service_logon"],
    }


def test_known_parameters_still_work_together(clients, events):
    answer = clients["viewer"].get(
        "/api/v1/events/",
        {"search": "bob", "ordering": "-severity", "page": 1, "page_size": 10, "severity_min": 1},
    )
    assert answer.status_code == 200
    assert answer.json()["count"] == 1


# --- histogram --------------------------------------------------------------------------------
def test_the_histogram_counts_matching_events_in_round_buckets_with_zeros(clients, events):
    since, until = T - timedelta(minutes=30), T + timedelta(minutes=30)
    answer = clients["viewer"].get(
        "/api/v1/events/histogram/",
        {"q": "NOT computer:dc-01", "since": since.isoformat(), "until": until.isoformat()},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["interval_sec"] == 30  # one hour in at most 120 buckets
    counts = {bucket["start"]: bucket["count"] for bucket in body["buckets"]}
    assert sum(counts.values()) == 3
    stamp = (T + timedelta(minutes=10)).replace(second=(T.second // 30) * 30)
    assert counts[stamp.isoformat().replace("+00:00", "Z")] == 1
    assert len(body["buckets"]) == 121
    assert body["buckets"][0]["start"] <= since.isoformat().replace("+00:00", "Z")


def test_the_histogram_defaults_to_the_last_24_hours(clients, events):
    body = clients["viewer"].get("/api/v1/events/histogram/").json()
    assert body["interval_sec"] == 1800
    assert sum(bucket["count"] for bucket in body["buckets"]) == 4  # not the 3-day-old one


def test_a_week_long_histogram_merges_hours(clients, events):
    body = (
        clients["viewer"]
        .get(
            "/api/v1/events/histogram/",
            {"since": (NOW - timedelta(days=7)).isoformat(), "until": NOW.isoformat()},
        )
        .json()
    )
    assert body["interval_sec"] == 3 * 3600  # 56 buckets
    assert sum(bucket["count"] for bucket in body["buckets"]) == 5


def test_since_after_until_is_a_400(clients, events):
    answer = clients["viewer"].get(
        "/api/v1/events/histogram/", {"since": NOW.isoformat(), "until": T.isoformat()}
    )
    assert answer.status_code == 400
    assert "since" in answer.json()


# --- facets -----------------------------------------------------------------------------------
def test_facets_count_the_top_values_of_a_stored_field(clients, events):
    answer = clients["viewer"].get(
        "/api/v1/events/facets/",
        {"field": "computer", "since": (NOW - timedelta(days=7)).isoformat()},
    )
    assert answer.json() == {
        "field": "computer",
        "values": [
            {"value": "WS-002", "count": 2},
            {"value": "DC-01", "count": 1},
            {"value": "WS-001", "count": 1},
            {"value": "dc-01", "count": 1},
        ],
        "sampled": False,
        "sample_size": None,
    }


def test_facets_count_a_raw_field_among_matching_events(clients, events):
    answer = clients["viewer"].get(
        "/api/v1/events/facets/", {"field": "TargetUserName", "q": "event_code:(4624 OR 4625)"}
    )
    assert answer.json() == {
        "field": "TargetUserName",
        "values": [{"value": "Administrator", "count": 1}, {"value": "bob", "count": 1}],
        "sampled": False,
        "sample_size": None,
    }
    numbers = clients["viewer"].get("/api/v1/events/facets/", {"field": "severity"}).json()
    assert numbers["values"][0] == {"value": 2, "count": 1} or numbers["values"][0]["count"] == 1
    assert sorted(v["value"] for v in numbers["values"]) == [2, 3, 4, 5]


@pytest.mark.parametrize("field", ["", "no spaces", "a;b"])
def test_facets_need_a_field_name(clients, events, field):
    answer = clients["viewer"].get("/api/v1/events/facets/", {"field": field})
    assert answer.status_code == 400
    assert "field" in answer.json()


# --- export -----------------------------------------------------------------------------------
def _body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_export_streams_every_match_as_csv(clients, events):
    answer = clients["viewer"].get("/api/v1/events/export/", {"q": "mimikatz", "format": "csv"})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    assert "attachment" in answer["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_body(answer))))
    assert [int(row["event_id"]) for row in rows] == [
        events["script_block"],
        events["mimikatz_process"],
    ]
    assert json.loads(rows[1]["raw"])["SubjectDomainName"] == "CORP"
    assert rows[1]["computer"] == "WS-002"


def test_export_as_json_lines_is_bounded_by_the_setting(clients, events, settings):
    settings.EXPORT_MAX_EVENTS = 2
    answer = clients["viewer"].get("/api/v1/events/export", {"format": "jsonl"})
    assert answer.status_code == 200
    assert answer["X-Export-Limit"] == "2"
    lines = [json.loads(line) for line in _body(answer).splitlines()]
    assert [line["event_id"] for line in lines] == [
        events["script_block"],
        events["mimikatz_process"],
    ]
    assert lines[0]["raw"]["ScriptBlockText"] == "Invoke-Mimikatz -DumpCreds"


def test_export_refuses_an_unknown_format(clients, events):
    answer = clients["viewer"].get("/api/v1/events/export/", {"format": "xml"})
    assert answer.status_code == 400
    assert "format" in answer.json()


# --- roles ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/histogram/",
        "/api/v1/events/facets/?field=computer",
        "/api/v1/events/export/",
        "/api/v1/searches/",
    ],
)
def test_hunting_paths_need_a_role(clients, path):
    for caller in READERS:
        assert clients[caller].get(path).status_code == 200
    assert clients["norole"].get(path).status_code == 403
    assert clients["anonymous"].get(path).status_code == 401
    assert clients["agent"].get(path).status_code == 401


# --- saved searches ---------------------------------------------------------------------------
def save(client, name, q, shared=False):
    return client.post("/api/v1/searches/", {"name": name, "q": q, "shared": shared}, format="json")


def test_every_role_saves_and_sees_its_own_and_the_shared_searches(clients):
    mine = save(clients["viewer"], "Admin logons", "TargetUserName:administrator")
    assert mine.status_code == 201
    assert mine.json()["name"] == "Admin logons"
    assert mine.json()["owner"] == "viewer"
    assert mine.json()["shared"] is False
    save(clients["analyst"], "Mimikatz", "mimikatz", shared=True)
    save(clients["analyst"], "Private", "bob")
    listed = clients["viewer"].get("/api/v1/searches/").json()
    assert [(s["name"], s["owner"], s["q"]) for s in listed] == [
        ("Admin logons", "viewer", "TargetUserName:administrator"),
        ("Mimikatz", "analyst", "mimikatz"),
    ]
    assert (
        clients["norole"]
        .post("/api/v1/searches/", {"name": "x", "q": "x"}, format="json")
        .status_code
        == 403
    )


def test_a_saved_search_must_be_a_readable_query(clients):
    answer = save(clients["analyst"], "Broken", "(mimikatz")
    assert answer.status_code == 400
    assert answer.json() == {"q": ["Missing ')' for the '(' opened at position 0"]}


def test_only_the_owner_or_an_admin_deletes_a_saved_search(clients):
    shared = save(clients["analyst"], "Shared", "mimikatz", shared=True).json()["search_id"]
    private = save(clients["analyst"], "Private", "bob").json()["search_id"]
    assert clients["viewer"].delete(f"/api/v1/searches/{shared}/").status_code == 403
    assert clients["viewer"].delete(f"/api/v1/searches/{private}/").status_code == 404
    assert clients["norole"].delete(f"/api/v1/searches/{shared}/").status_code == 403
    assert clients["analyst"].delete(f"/api/v1/searches/{private}").status_code == 204
    assert clients["admin"].delete(f"/api/v1/searches/{shared}/").status_code == 204
    assert clients["analyst"].get("/api/v1/searches/").json() == []


# --- schema -----------------------------------------------------------------------------------
def test_the_openapi_schema_describes_the_hunting_paths_with_their_roles(clients):
    schema = (
        clients["viewer"]
        .get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        .json()
    )
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/events/histogram/", "get"),
        ("/api/v1/events/facets/", "get"),
        ("/api/v1/events/export/", "get"),
        ("/api/v1/searches/", "get"),
        ("/api/v1/searches/", "post"),
        ("/api/v1/searches/{search_id}/", "delete"),
    ]:
        assert "Who: any role" in paths[path][method]["description"]
    names = {p["name"] for p in paths["/api/v1/events/"]["get"]["parameters"]}
    assert "q" in names


def test_a_utc_timestamp_helper_is_iso():
    from events.hunting import iso

    assert iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


def test_agent_names_the_shipping_agents_host(clients):
    from agents.services import register_agent

    agent, _token = register_agent(hostname="Sensor-07")
    shipped = create_events([dict(DATA[0][1])], agent=agent).created[0]
    create_events([dict(DATA[1][1])])
    for q in ("agent:sensor-07", "agent:SENSOR-*", "agent:*"):
        answer = clients["viewer"].get("/api/v1/events/", {"q": q})
        assert [row["event_id"] for row in answer.json()["results"]] == [shipped.event_id], q
    answer = clients["viewer"].get("/api/v1/events/", {"q": "NOT agent:sensor-07"})
    assert shipped.event_id not in {row["event_id"] for row in answer.json()["results"]}
    assert answer.json()["count"] == 1


def test_the_migration_fills_the_search_text_of_events_stored_before_it(events):
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    from events.models import SecurityEvent

    SecurityEvent.objects.update(search_text="")
    migration = importlib.import_module("events.migrations.0003_hunting_backfill_and_trigram_index")
    # The data step only asks the schema editor for its connection.
    migration.backfill(apps, SimpleNamespace(connection=connection))
    event = SecurityEvent.objects.get(pk=events["mimikatz_process"])
    assert "\ncorp\n" in event.search_text
    assert "\nc:\\tools\\mimikatz.exe sekurlsa::logonpasswords\n" in event.search_text
    assert not SecurityEvent.objects.filter(search_text="").exists()
