"""The agent endpoint's fast validation agrees with EventInputSerializer, the authority.

`events.ingest.fast_validate` either returns exactly what the serializer returns, or None (and
the serializer is asked); it must never accept what the serializer refuses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.exceptions import ValidationError

from events.api.serializers import EventInputSerializer
from events.ingest import fast_validate, prepare
from events.normalize import normalize_record
from tests.test_agents_helpers import jsonl_records

VALID = {
    "computer": "WS-001",
    "event_code": 4625,
    "severity": 3,
    "message": "An account failed to log on",
    "source_type": "Windows Security",
    "timestamp": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "raw": {"EventID": 4625, "TargetUserName": "bob", "nested": [{"a": "b"}]},
    "user_name": "bob",
    "source_ip": "10.0.0.1",
    "agent_record_id": 42,
}


def serializer_result(item):
    try:
        return EventInputSerializer().run_validation(item)
    except ValidationError:
        return "invalid"


@pytest.mark.parametrize(
    "relative",
    ["benign/evtxrs_security_background_B.jsonl", "attacks/eas_credaccess_latmove_security.jsonl"],
)
def test_fast_validation_gives_the_serializers_answer_on_real_records(relative):
    for record in jsonl_records(relative):
        item = normalize_record(record)
        fast = fast_validate(item)
        assert fast is not None
        assert fast == dict(serializer_result(item))


@pytest.mark.parametrize(
    "change",
    [
        {"computer": ""},
        {"computer": "   "},
        {"computer": "x" * 256},
        {"computer": 12},
        {"computer": "WS\x00"},
        {"computer": "WS\ud800"},
        {"event_code": "4625"},
        {"event_code": -1},
        {"event_code": 2**31},
        {"event_code": True},
        {"event_code": 4625.0},
        {"severity": 0},
        {"severity": 6},
        {"severity": None},
        {"message": None},
        {"message": "a\x00b"},
        {"source_type": "s" * 101},
        {"source_type": ""},
        {"timestamp": "2024-01-02T03:04:05Z"},
        {"timestamp": datetime(2024, 1, 2, 3, 4, 5)},  # noqa: DTZ001  (naive on purpose)
        {"timestamp": None},
        {"raw": []},
        {"raw": {"k": "v\x00"}},
        {"raw": {"k": ["ok", {"deep": "\x00"}]}},
        {"user_name": "u" * 256},
        {"source_ip": "1" * 65},
        {"agent_record_id": "42"},
        {"agent_record_id": 2**63},
        {"agent_record_id": 1.5},
    ],
)
def test_anything_not_plainly_valid_is_left_to_the_serializer(change):
    item = {**VALID, **change}
    assert fast_validate(item) is None
    # and prepare() still answers exactly as the serializer does
    prepared = prepare([item])
    expected = serializer_result(item)
    if expected == "invalid":
        assert prepared.items == [] and len(prepared.errors) == 1
    else:
        assert prepared.items == [dict(expected)]


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"message": ""},
        {"message": "  padded  "},
        {"computer": "  WS-001  "},
        {"user_name": ""},
        {"agent_record_id": None},
        {"timestamp": datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))},
        {"unknown_key": "ignored"},
        {"computer": "ПК-Бухгалтерия"},
    ],
)
def test_plainly_valid_items_get_the_serializers_exact_result(change):
    item = {**VALID, **change}
    assert fast_validate(item) == dict(serializer_result(item))


def test_optional_fields_left_out_stay_out():
    item = {k: VALID[k] for k in ("computer", "event_code", "severity", "message", "source_type")}
    assert fast_validate(item) == dict(serializer_result(item)) == item
