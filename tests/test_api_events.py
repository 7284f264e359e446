"""GET/POST /api/v1/events/, POST /api/v1/events/bulk/, GET /api/v1/events/{event_id}/."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from rest_framework.exceptions import ValidationError as DRFValidationError

from events.api.serializers import EventInputSerializer
from events.api.views import validate_events
from events.models import SecurityEvent
from events.services import create_events
from tests.api_helpers import DENIED, READERS, WRITERS, received_on

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_setup")]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "shared/spec/messages.schema.json").read_text()
)


def event(**overrides) -> dict:
    item = {
        "computer": "WS-001",
        "event_code": 4625,
        "severity": 3,
        "message": "Failed login attempt",
        "source_type": "Windows Security",
    }
    item.update(overrides)
    return item


def stored(**overrides) -> SecurityEvent:
    return create_events([event(**overrides)]).created[0]


# --- create one ---------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_admin_and_analyst_create_an_event_and_get_its_id(clients, caller):
    response = clients[caller].post(
        "/api/v1/events/",
        event(raw={"TargetUserName": "bob"}, user_name="bob", source_ip="10.0.0.5"),
        format="json",
    )
    assert response.status_code == 201
    stored_event = SecurityEvent.objects.get(pk=response.json()["event_id"])
    assert set(response.json()) == {"event_id"}
    assert (stored_event.computer, stored_event.event_code, stored_event.severity) == (
        "WS-001",
        4625,
        3,
    )
    assert stored_event.raw == {"TargetUserName": "bob"}
    assert stored_event.user_name == "bob"
    assert stored_event.ai_status == "pending"


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_create_events(clients, caller):
    response = clients[caller].post("/api/v1/events", event(), format="json")
    assert response.status_code == DENIED[caller]
    assert not SecurityEvent.objects.exists()


def test_created_event_keeps_the_given_timestamp_and_naive_times_are_utc(clients):
    response = clients["admin"].post(
        "/api/v1/events", event(timestamp="2025-01-01T12:00:00"), format="json"
    )
    stored_event = SecurityEvent.objects.get(pk=response.json()["event_id"])
    assert stored_event.timestamp == datetime(2025, 1, 1, 12, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_creating_an_event_broadcasts_it_to_the_events_channel(clients, admin_user):
    response, messages = received_on(
        "events",
        admin_user,
        lambda: clients["analyst"].post("/api/v1/events/", event(), format="json"),
    )
    message = messages[0]
    jsonschema.validate(message, SCHEMA)
    assert message["type"] == "event"
    assert message["data"]["event_id"] == response.json()["event_id"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"severity": 6}, "severity"),
        ({"severity": 0}, "severity"),
        ({"severity": "high"}, "severity"),
        ({"severity": "3"}, "severity"),
        ({"severity": True}, "severity"),
        ({"event_code": "4625"}, "event_code"),
        ({"event_code": 2**40}, "event_code"),
        ({"event_code": 4625.5}, "event_code"),
        ({"computer": ""}, "computer"),
        ({"computer": 12}, "computer"),
        ({"computer": "x" * 256}, "computer"),
        ({"raw": ["not", "an", "object"]}, "raw"),
        ({"raw": {"a": "nul\u0000byte"}}, "raw"),
        ({"message": "nul\u0000byte"}, "message"),
        ({"timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_bad_event_fields_get_a_field_level_400(clients, overrides, field):
    response = clients["admin"].post("/api/v1/events/", event(**overrides), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not SecurityEvent.objects.exists()


@pytest.mark.parametrize(
    "missing", ["computer", "event_code", "severity", "message", "source_type"]
)
def test_a_missing_required_field_gets_a_400_naming_it(clients, missing):
    item = event()
    del item[missing]
    response = clients["admin"].post("/api/v1/events/", item, format="json")
    assert response.status_code == 400
    assert response.json()[missing] == ["This field is required."]


@pytest.mark.parametrize(
    "body", ['{"computer": "WS"', "[1, 2", '{"severity": NaN}', "\xff\xfe", "[" * 100000]
)
def test_malformed_json_is_a_400_not_a_500(clients, body):
    response = clients["admin"].post(
        "/api/v1/events/", body.encode("latin-1"), content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# The event object is level 1 (2 inside a bulk array), its raw object level 2 (3).
@pytest.mark.parametrize(("depth", "status"), [(10, 201), (62, 201), (70, 400), (5000, 400)])
def test_raw_nesting_is_limited_with_a_400_never_a_recursion_500(clients, depth, status):
    item = json.dumps(event(raw={})).replace('"raw": {}', f'"raw": {nested(depth)}')
    for url, body in (("/api/v1/events/", item), ("/api/v1/events/bulk/", f"[{item}]")):
        response = clients["admin"].post(url, body, content_type="application/json")
        assert response.status_code == status
        if status == 400:
            assert "nested deeper than 64 levels" in response.json()["detail"]


def test_a_body_that_is_not_json_is_415(clients):
    response = clients["admin"].post("/api/v1/events/", "computer=WS", content_type="text/plain")
    assert response.status_code == 415


def test_an_oversized_body_is_413_with_the_limit(clients, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = clients["admin"].post("/api/v1/events/", event(message="x" * 4096), format="json")
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]


# --- bulk ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", WRITERS)
def test_bulk_create_stores_every_event_and_returns_their_ids(clients, caller):
    items = [event(computer=f"WS-{i:03}", raw={"n": i}) for i in range(25)]
    response = clients[caller].post("/api/v1/events/bulk/", items, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 25
    computers = dict(
        SecurityEvent.objects.filter(pk__in=body["event_ids"]).values_list("pk", "computer")
    )
    assert [computers[pk] for pk in body["event_ids"]] == [f"WS-{i:03}" for i in range(25)]


def test_bulk_path_without_trailing_slash_works(clients):
    response = clients["analyst"].post("/api/v1/events/bulk", [event()], format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("caller", DENIED)
def test_others_cannot_bulk_create(clients, caller):
    response = clients[caller].post("/api/v1/events/bulk/", [event()], format="json")
    assert response.status_code == DENIED[caller]


def test_bulk_create_is_all_or_nothing_and_reports_errors_by_index(clients):
    items = [event(), event(severity=9), event(), event(computer=None), event()]
    response = clients["admin"].post("/api/v1/events/bulk/", items, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "2 of 5 events are invalid; nothing was stored."
    assert [error["index"] for error in body["errors"]] == [1, 3]
    assert "severity" in body["errors"][0]["errors"]
    assert "computer" in body["errors"][1]["errors"]
    assert not SecurityEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [({"computer": "WS"}, "Expected a JSON array"), ([], "empty"), ([1, "x"], "invalid")],
)
def test_bulk_rejects_bodies_that_are_not_a_list_of_events(clients, body, reason):
    response = clients["admin"].post("/api/v1/events/bulk/", body, format="json")
    assert response.status_code == 400
    assert reason in json.dumps(response.json())


def test_bulk_refuses_more_than_events_bulk_max(clients, settings):
    settings.EVENTS_BULK_MAX = 10
    response = clients["admin"].post("/api/v1/events/bulk/", [event()] * 11, format="json")
    assert response.status_code == 400
    assert "11 > 10" in response.json()["detail"]
    assert not SecurityEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_broadcasts_every_created_event(clients, admin_user):
    response, messages = received_on(
        "dashboard",
        admin_user,
        lambda: clients["admin"].post("/api/v1/events/bulk/", [event(), event()], format="json"),
        expect=2,
    )
    for message in messages:
        jsonschema.validate(message, SCHEMA)
    assert sorted(m["data"]["event_id"] for m in messages) == sorted(response.json()["event_ids"])


TRICKY_ITEMS = [
    event(timestamp="2025-01-01T12:00:00"),
    event(timestamp="2025-01-01T12:00:00.123456+02:00", raw={"k": [1, {"a": None}]}),
    event(timestamp="2025-01-01 12:00Z", user_name="  bob  ", source_ip=""),
    event(timestamp="2025-13-01T00:00:00"),
    event(timestamp="yesterday"),
    event(timestamp=""),
    event(timestamp=None),
    event(timestamp=1735732800),
    event(computer="  WS-9  ", message="  keep my spaces  "),
    event(severity=5.0),
    event(severity=True),
    event(raw={"a": "nul\u0000"}),
    event(agent_record_id=None),
    event(agent_record_id=2**63),
    {"computer": "WS"},
    "not an object",
    [event()],
]


def test_bulk_validation_gives_exactly_the_serializers_answers():
    valid, invalid = validate_events(TRICKY_ITEMS)
    expected_valid, expected_invalid = [], []
    for index, item in enumerate(TRICKY_ITEMS):
        try:
            expected_valid.append(dict(EventInputSerializer().run_validation(item)))
        except DRFValidationError as exc:
            expected_invalid.append((index, exc.detail))
    assert [dict(item) for item in valid] == expected_valid
    assert invalid == expected_invalid
    assert len(expected_valid) == 6  # the test covers both paths


def test_input_serializer_validates_many_items_standalone():
    serializer = EventInputSerializer(data=[event(), event(severity=1)], many=True)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data[1]["severity"] == 1
    assert "timestamp" not in serializer.validated_data[0]


# --- read ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", READERS)
def test_every_role_reads_one_event_with_its_ai_fields(clients, caller):
    item = stored(raw={"EventID": 4625}, user_name="bob", source_ip="10.0.0.9")
    SecurityEvent.objects.filter(pk=item.pk).update(
        ai_status="done", ai_score=91, ai_category="brute_force", ai_description="spray"
    )
    response = clients[caller].get(f"/api/v1/events/{item.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == item.pk
    assert body["raw"] == {"EventID": 4625}
    assert (body["ai_status"], body["ai_score"], body["ai_category"]) == (
        "done",
        91,
        "brute_force",
    )
    assert {"received_at", "agent_id", "ai_analyzed_at", "ai_provider", "ai_error"} <= set(body)


@pytest.mark.parametrize("caller", ["anonymous", "agent", "norole"])
def test_others_cannot_read_events(clients, caller):
    item = stored()
    assert clients[caller].get(f"/api/v1/events/{item.pk}").status_code == DENIED[caller]
    assert clients[caller].get("/api/v1/events").status_code == DENIED[caller]


def test_unknown_event_is_404(clients):
    assert clients["viewer"].get("/api/v1/events/999999/").status_code == 404
    assert clients["viewer"].get("/api/v1/events/99999999999999999999999").status_code == 404


def test_list_is_paginated_newest_first(clients):
    base = datetime(2025, 3, 1, tzinfo=UTC)
    create_events([event(timestamp=base + timedelta(minutes=i), raw={"i": i}) for i in range(7)])
    response = clients["viewer"].get("/api/v1/events/?page_size=3")
    body = response.json()
    assert body["count"] == 7
    assert [e["raw"]["i"] for e in body["results"]] == [6, 5, 4]
    page3 = clients["viewer"].get("/api/v1/events/?page_size=3&page=3").json()
    assert [e["raw"]["i"] for e in page3["results"]] == [0]


def test_list_filters(clients):
    base = datetime(2025, 3, 1, tzinfo=UTC)
    create_events(
        [
            event(computer="DC-01", event_code=4625, severity=5, timestamp=base),
            event(computer="WS-001", event_code=4624, severity=1, timestamp=base + timedelta(1)),
            event(
                computer="WS-002",
                event_code=4625,
                severity=4,
                message="Logon by mallory",
                timestamp=base + timedelta(2),
            ),
        ]
    )
    SecurityEvent.objects.filter(computer="DC-01").update(ai_score=95)

    def computers(query: str) -> list[str]:
        response = clients["analyst"].get(f"/api/v1/events/?{query}")
        assert response.status_code == 200, response.json()
        return [e["computer"] for e in response.json()["results"]]

    assert computers("computer=DC-01") == ["DC-01"]
    assert computers("event_code=4625") == ["WS-002", "DC-01"]
    assert computers("severity_min=4") == ["WS-002", "DC-01"]
    assert computers("since=2025-03-02T00:00:00Z") == ["WS-002", "WS-001"]
    assert computers("until=2025-03-02T00:00:00Z") == ["WS-001", "DC-01"]
    assert computers("ai_score_min=90") == ["DC-01"]
    assert computers("search=mallory") == ["WS-002"]
    assert computers("ordering=severity") == ["WS-001", "WS-002", "DC-01"]


@pytest.mark.parametrize(
    "query", ["severity_min=high", "since=not-a-date", "event_code=x", "ai_score_min=abc"]
)
def test_bad_filter_values_are_400(clients, query):
    response = clients["viewer"].get(f"/api/v1/events/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_unknown_ordering_field_falls_back_to_newest_first(clients):
    older, newer = stored(timestamp=datetime(2025, 1, 1, tzinfo=UTC)), stored()
    response = clients["viewer"].get("/api/v1/events/?ordering=raw")
    assert response.status_code == 200
    assert [e["event_id"] for e in response.json()["results"]] == [newer.pk, older.pk]


def test_event_list_uses_a_fixed_number_of_queries(clients, django_assert_max_num_queries):
    create_events([event(computer=f"WS-{i}") for i in range(60)])
    # session, groups, count (+ the planner's estimate first on PostgreSQL), page
    with django_assert_max_num_queries(5):
        response = clients["viewer"].get("/api/v1/events/?page_size=60")
    assert len(response.json()["results"]) == 60


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_without_content_length_is_read_under_asgi(clients, admin_user):
    from asgiref.sync import async_to_sync
    from channels.testing import HttpCommunicator
    from django.core.asgi import get_asgi_application

    from accounts.services import issue_access_token

    token, _session = issue_access_token(admin_user)
    communicator = HttpCommunicator(
        get_asgi_application(),
        "POST",
        "/api/v1/events/bulk/",
        body=json.dumps([event(), event()]).encode(),
        headers=[
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),  # and no content-length, as daphne passes it
        ],
    )
    response = async_to_sync(communicator.get_response)(timeout=10)
    assert response["status"] == 201, response["body"][:300]
    assert json.loads(response["body"])["created"] == 2
    assert SecurityEvent.objects.count() == 2
