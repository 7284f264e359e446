"""Hunting at scale: the per-field trigram indexes (PostgreSQL), sampled raw-field facets, and raw
fields found inside nested record shapes (Winlogbeat, evtx) by `Field:value`.

The query-language results themselves are in tests/test_api_hunt.py (both databases); here:
the migration's field list is the compiler's, PostgreSQL answers an indexed field's term from
its own index (EXPLAIN), and a raw-field facet over more events than `FACET_SAMPLE` counts the
newest ones and says so.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from events import hunting
from events.hunting import matching
from events.query import INDEXED_RAW_FIELDS, RAW_FIELD_PATHS, compile_query
from events.services import create_events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

NOW = timezone.now().replace(microsecond=0)
MIGRATION = importlib.import_module("events.migrations.0007_hunting_field_trigram_indexes")


def test_the_migration_indexes_exactly_the_fields_the_compiler_narrows_by():
    assert MIGRATION.FIELDS == INDEXED_RAW_FIELDS
    assert MIGRATION.PATHS == RAW_FIELD_PATHS


def _event(minutes_ago: int, **raw) -> dict:
    return {
        "computer": "WS-001",
        "event_code": 4688,
        "severity": 2,
        "message": "A new process has been created",
        "timestamp": NOW - timedelta(minutes=minutes_ago),
        "raw": raw,
    }


def _plan(q: str) -> str:
    rows = matching(compile_query(q), None, None).order_by()
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        # A handful of rows: make the planner show the index it can use, not a sequential scan.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)  # noqa: S608 - the ORM's own SQL
        return "\n".join(line for (line,) in cursor.fetchall())


@pytest.mark.skipif("connection.vendor != 'postgresql'")
@pytest.mark.parametrize(
    ("q", "index"),
    [
        ("CommandLine:*powershell*", "event_raw_commandline_trgm_idx"),
        ("ParentImage:*\\cmd.exe", "event_raw_parentimage_trgm_idx"),
        ("TargetUserName:administrator", "event_raw_targetusername_trgm_idx"),
        ("SubjectUserName:administrator", "event_search_text_trgm_idx"),  # not in the list
    ],
)
def test_postgresql_narrows_an_indexed_field_by_its_own_index(q, index):
    create_events([_event(1, CommandLine="powershell -enc AAAA", ParentImage="C:\\cmd.exe")])
    plan = _plan(q)
    # The events table is partitioned by day on PostgreSQL: the plan names the partitions' own
    # indexes, each attached to the table's index of that name.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(%s)",
            [index],
        )
        names = {index} | {name for (name,) in cursor.fetchall()}
    assert any(name in plan for name in names), plan


def test_an_indexed_field_matches_only_its_own_value_not_another_fields(clients):
    create_events(
        [
            _event(1, CommandLine="powershell.exe -nop", Image="C:\\powershell.exe"),
            _event(2, CommandLine="cmd.exe /c whoami", Image="C:\\Windows\\powershell.exe"),
            _event(3, ParentCommandLine="powershell.exe", CommandLine="cmd.exe"),
        ]
    )
    answer = clients["viewer"].get("/api/v1/events/", {"q": "CommandLine:*powershell*"})
    assert [row["raw"]["CommandLine"] for row in answer.json()["results"]] == [
        "powershell.exe -nop"
    ]
    answer = clients["viewer"].get("/api/v1/events/", {"q": "NOT CommandLine:*POWERSHELL*"})
    assert answer.json()["count"] == 2


def test_a_raw_field_facet_over_more_events_than_the_sample_counts_the_newest(clients, monkeypatch):
    # Oldest first: three "alice" long ago, then "bob", "bob", "carol" in the last minutes.
    users = ["alice", "alice", "alice", "bob", "bob", "carol"]
    create_events(
        [_event(60 - minute, TargetUserName=name) for minute, name in enumerate(users)]
        + [_event(70)]  # no TargetUserName: matches the range, has no value to count
    )
    monkeypatch.setattr(hunting, "FACET_SAMPLE", 3)
    answer = clients["viewer"].get("/api/v1/events/facets/", {"field": "TargetUserName"})
    assert answer.json() == {
        "field": "TargetUserName",
        "values": [{"value": "bob", "count": 2}, {"value": "carol", "count": 1}],
        "sampled": True,
        "sample_size": 3,
    }
    # A stored field is never sampled.
    answer = clients["viewer"].get("/api/v1/events/facets/", {"field": "computer"})
    assert answer.json() == {
        "field": "computer",
        "values": [{"value": "WS-001", "count": 7}],
        "sampled": False,
        "sample_size": None,
    }
    # As many matching events as the sample: every one counted, not sampled.
    monkeypatch.setattr(hunting, "FACET_SAMPLE", 7)
    answer = clients["viewer"].get("/api/v1/events/facets/", {"field": "TargetUserName"})
    assert answer.json()["sampled"] is False
    assert answer.json()["values"][0] == {"value": "alice", "count": 3}


# --- raw fields inside nested shapes ------------------------------------------------------------
SHAPES = {
    "flat": {"EventID": 4624, "TargetUserName": "bob", "LogonType": 3, "IpAddress": "10.0.0.1"},
    "winlogbeat": {
        "winlog": {
            "event_id": 4624,
            "event_data": {"TargetUserName": "Bob", "LogonType": "3", "IpAddress": "10.0.0.2"},
        }
    },
    "evtx": {
        "Event": {
            "System": {"EventID": 4688, "Computer": "WS-9"},
            "EventData": {"CommandLine": "C:\\Tools\\mimikatz.exe", "TargetUserName": "carol"},
        }
    },
    "evtx_top": {
        "System": {"EventID": 4625},
        "EventData": {"TargetUserName": "BOB", "LogonType": 10},
    },
    "other": {"note": "TargetUserName bob", "nested": {"TargetUserName": "bob"}},
}


@pytest.fixture
def shaped():
    created = create_events([_event(minute, **raw) for minute, raw in enumerate(SHAPES.values())])
    return {event.event_id: name for name, event in zip(SHAPES, created.created, strict=True)}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("TargetUserName:bob", {"flat", "winlogbeat", "evtx_top"}),
        ("TargetUserName:b*", {"flat", "winlogbeat", "evtx_top"}),
        ("LogonType:3", {"flat", "winlogbeat"}),  # a number or its text, at any depth
        ("LogonType:10", {"evtx_top"}),
        ("CommandLine:*MIMIKATZ*", {"evtx"}),
        ("TargetUserName:*", {"flat", "winlogbeat", "evtx", "evtx_top"}),
        ("NOT TargetUserName:bob", {"evtx", "other"}),
        ("IpAddress:10.0.0.2", {"winlogbeat"}),
        ("bob", {"flat", "winlogbeat", "evtx_top", "other"}),  # a bare word: any value
    ],
)
def test_a_raw_field_is_found_in_every_shape_that_keeps_it_by_name(clients, shaped, q, expected):
    answer = clients["viewer"].get("/api/v1/events/", {"q": q, "page_size": 50})
    assert answer.status_code == 200, answer.json()
    assert {shaped[row["event_id"]] for row in answer.json()["results"]} == expected


def test_raw_field_facets_count_every_shape(clients, shaped):
    answer = clients["viewer"].get("/api/v1/events/facets/", {"field": "TargetUserName"})
    assert answer.json()["values"] == [
        {"value": "BOB", "count": 1},
        {"value": "Bob", "count": 1},
        {"value": "bob", "count": 1},
        {"value": "carol", "count": 1},
    ]
