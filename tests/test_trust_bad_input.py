"""Bad input gets a 4xx naming what is wrong, never a 500 and never a silent change (issue 13,
item 6). Runs on SQLite and, with DATABASE_URL set, on PostgreSQL (its zone-offset limits are
the reason for the `since` case).

Callers: `agent` — an enrolled agent for host WS-001; `viewer` (group viewer) from conftest.
"""

from __future__ import annotations

import pytest

from agents import services
from events.models import SecurityEvent
from events.normalize import TRUNCATED_KEY
from tests.api_helpers import bearer_client
from tests.test_agents_helpers import agent_client

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/agents/events/"


@pytest.fixture
def agent(db):
    agent, token = services.register_agent(hostname="WS-001")
    agent.client = agent_client(token)
    return agent


def windows_record(**event_data) -> dict:
    return {
        "Id": 4625,
        "RecordId": 77,
        "MachineName": "WS-001",
        "LogName": "Security",
        "TimeCreated": "/Date(1466611200000)/",
        "Message": "An account failed to log on.",
        "Properties": [],
        "EventData": {"LogonType": "3", **event_data},
    }


def flat_record(**fields) -> dict:
    """Windows' flat evtx export (the JSON Lines test data's shape)."""
    return {
        "EventID": 4625,
        "Computer": "WS-001",
        "Channel": "Security",
        "TimeCreated": "2016-06-22T16:00:00Z",
        "EventRecordID": 77,
        "Level": 0,
        "LogonType": "3",
        **fields,
    }


def test_a_time_beyond_year_9999_is_a_400_naming_the_record_not_a_500(agent):
    good = windows_record()
    bad = {**windows_record(), "RecordId": 78, "TimeCreated": "/Date(99999999999999999)/"}
    response = agent.client.post(EVENTS, [good, bad], format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert "1" in str(body) and "timestamp" in str(body), body  # record index 1, its field
    assert SecurityEvent.objects.count() == 0  # all or nothing


@pytest.mark.parametrize(
    "since",
    ["2578-10-16T00:28:44-20:15", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-10:00"],
)
def test_an_event_filter_with_an_odd_zone_offset_is_a_400_or_an_answer_never_a_500(viewer, since):
    response = bearer_client(viewer).get("/api/v1/events/", {"since": since})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert "since" in response.json()


def test_since_with_a_20_hour_offset_is_read_in_utc(viewer):
    response = bearer_client(viewer).get("/api/v1/events/", {"since": "2578-10-16T00:28:44-20:15"})
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_an_over_long_user_name_and_address_are_kept_whole_in_raw_and_flagged(agent):
    name, address = "u" * 5000, "1" * 300
    record = flat_record(TargetUserName=name, IpAddress=address)
    response = agent.client.post(EVENTS, [record], format="json")
    assert response.status_code == 201, response.content
    event = SecurityEvent.objects.get()
    assert event.user_name == name[:255] and event.source_ip == address[:64]
    assert event.raw["TargetUserName"] == name and event.raw["IpAddress"] == address
    assert event.raw[TRUNCATED_KEY] == {"user_name": 5000, "source_ip": 300}


def test_a_normal_record_carries_no_truncation_flag(agent):
    response = agent.client.post(EVENTS, [flat_record(TargetUserName="bob")], format="json")
    assert response.status_code == 201
    assert TRUNCATED_KEY not in SecurityEvent.objects.get().raw


def test_linking_an_id_beyond_64_bits_is_a_400_not_a_500(db, admin_user):
    """Found by schemathesis (docs/security.md, "Fuzzing")."""
    client = bearer_client(admin_user)
    huge = 509135612102181679976677376
    incident = client.post(
        "/api/v1/incidents/", {"title": "x", "severity": 3, "alert_ids": [huge]}, format="json"
    )
    alert = client.post(
        "/api/v1/alerts/",
        {"title": "x", "severity": 3, "category": "t", "hostname": "", "event_ids": [huge]},
        format="json",
    )
    assert (incident.status_code, alert.status_code) == (400, 400)
    assert "alert_ids" in incident.json() and "event_ids" in alert.json()
