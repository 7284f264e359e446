"""Shipping events through POST /api/v1/agents/events/: batches, idempotent retries, limits.

Callers: `agent` — an enrolled agent for host WS-001 (Authorization: Agent <token>).
Real Windows records are read from ../shared/data/windows at test time.
"""

from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest
from django.utils import timezone

from agents import services
from agents.models import Agent, AgentStatus
from events.models import SecurityEvent
from tests.test_agents_helpers import MESSAGE_SCHEMA, agent_client, jsonl_records

EVENTS = "/api/v1/agents/events/"


def flat_event(**extra):
    return {
        "event_code": 4625,
        "severity": 3,
        "message": "An account failed to log on",
        "source_type": "Windows Security",
        **extra,
    }


@pytest.fixture
def agent(db):
    agent, token = services.register_agent(hostname="WS-001")
    agent.client = agent_client(token)
    return agent


@pytest.mark.django_db
def test_a_batch_is_stored_with_the_agents_hostname_and_broadcast_after_commit(
    agent, broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = agent.client.post(
            EVENTS,
            [flat_event(), flat_event(computer="DC-01", event_code=4624, severity=1)],
            format="json",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] == 2 and body["duplicates"] == 0
    stored = SecurityEvent.objects.filter(event_id__in=body["event_ids"]).order_by("event_id")
    assert [(e.computer, e.event_code, e.agent_id) for e in stored] == [
        ("WS-001", 4625, agent.agent_id),
        ("DC-01", 4624, agent.agent_id),
    ]
    event_messages = [m for g, m in broadcasts if g == "siem.events"]
    assert [m["data"]["event_id"] for m in event_messages] == body["event_ids"]
    for message in event_messages:
        jsonschema.validate(message, MESSAGE_SCHEMA)


@pytest.mark.django_db
def test_a_retried_batch_of_real_windows_records_is_stored_once(agent):
    records = jsonl_records("attacks/eas_kerberos_password_spray_4771.jsonl")
    first = agent.client.post(EVENTS, records, format="json")
    retry = agent.client.post(EVENTS, records, format="json")
    assert first.status_code == 201 and first.json()["created"] == len(records)
    assert retry.status_code == 200
    assert retry.json() == {"created": 0, "duplicates": len(records), "event_ids": []}
    assert SecurityEvent.objects.count() == len(records)
    ids = set(SecurityEvent.objects.values_list("agent_record_id", flat=True))
    assert ids == {r["EventRecordID"] for r in records}


@pytest.mark.django_db
def test_a_partly_delivered_batch_stores_only_the_missing_records(agent):
    batch = [flat_event(record_id=n) for n in (1, 2, 3)]
    agent.client.post(EVENTS, batch[:2], format="json")
    response = agent.client.post(EVENTS, batch, format="json")
    assert response.json()["created"] == 1 and response.json()["duplicates"] == 2
    assert sorted(SecurityEvent.objects.values_list("agent_record_id", flat=True)) == [1, 2, 3]


@pytest.mark.django_db
def test_the_same_record_id_from_another_agent_is_a_different_event(agent):
    _other, token = services.register_agent(hostname="WS-002")
    agent.client.post(EVENTS, [flat_event(record_id=7)], format="json")
    response = agent_client(token).post(EVENTS, [flat_event(record_id=7)], format="json")
    assert response.json()["created"] == 1
    assert SecurityEvent.objects.count() == 2


@pytest.mark.django_db
def test_a_record_repeated_inside_one_batch_is_stored_once(agent):
    response = agent.client.post(EVENTS, [flat_event(record_id=9)] * 3, format="json")
    assert response.json()["created"] == 1 and response.json()["duplicates"] == 2


@pytest.mark.django_db
def test_events_without_a_record_id_are_never_deduplicated(agent):
    agent.client.post(EVENTS, [flat_event()], format="json")
    agent.client.post(EVENTS, [flat_event()], format="json")
    assert SecurityEvent.objects.count() == 2


@pytest.mark.django_db
def test_batch_limit_is_enforced_and_nothing_is_stored(agent, settings):
    settings.AGENT_BATCH_MAX = 5
    assert agent.client.post(EVENTS, [flat_event()] * 5, format="json").status_code == 201
    response = agent.client.post(EVENTS, [flat_event()] * 6, format="json")
    assert response.status_code == 400
    assert "6 > 5" in response.json()["detail"] and "AGENT_BATCH_MAX" in response.json()["detail"]
    assert SecurityEvent.objects.count() == 5


@pytest.mark.django_db
def test_one_invalid_item_rejects_the_batch_with_errors_by_index(agent):
    batch = [
        flat_event(),
        flat_event(severity=9),
        "not an object",
        {"EventID": "many", "Computer": "WS-001"},
        flat_event(),
    ]
    response = agent.client.post(EVENTS, batch, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "3 of 5 events are invalid" in body["detail"]
    errors = {item["index"]: item["errors"] for item in body["errors"]}
    assert set(errors) == {1, 2, 3}
    assert "severity" in errors[1]
    assert "non_field_errors" in errors[2]
    assert "event_code" in errors[3]
    assert not SecurityEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "reason"),
    [([], "empty"), ({"event_code": 1}, "JSON array"), ("text", "JSON array")],
)
def test_a_body_that_is_not_a_batch_is_a_400(agent, body, reason):
    response = agent.client.post(EVENTS, body, format="json")
    assert response.status_code == 400
    assert reason in response.json()["detail"]


@pytest.mark.django_db
def test_an_events_envelope_object_is_accepted(agent):
    response = agent.client.post(EVENTS, {"events": [flat_event()]}, format="json")
    assert response.status_code == 201 and response.json()["created"] == 1


@pytest.mark.django_db
def test_malformed_json_is_a_400_not_a_traceback(agent):
    response = agent.client.generic(
        "POST", EVENTS, b'[{"event_code": 1,', content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
def test_windows_records_are_normalized_and_kept_whole_in_raw(agent):
    records = jsonl_records("attacks/eas_credaccess_latmove_security.jsonl")
    network_logon = next(r for r in records if r["EventID"] == 4624 and r.get("IpAddress") != "-")
    response = agent.client.post(EVENTS, [network_logon], format="json")
    event = SecurityEvent.objects.get(event_id=response.json()["event_ids"][0])
    assert event.raw == network_logon
    assert event.computer == network_logon["Computer"] != "WS-001"
    assert event.event_code == 4624 and event.agent_record_id == network_logon["EventRecordID"]
    assert event.user_name == network_logon["TargetUserName"]
    assert event.source_ip == network_logon["IpAddress"]
    assert event.timestamp.isoformat().startswith(network_logon["TimeCreated"][:19])


@pytest.mark.django_db
def test_get_winevent_and_winlogbeat_records_are_accepted(agent):
    get_winevent = {
        "Id": 4625,
        "MachineName": "WS-001.corp.local",
        "TimeCreated": "/Date(1595449776414)/",
        "Level": 0,
        "LevelDisplayName": "Information",
        "LogName": "Security",
        "ProviderName": "Microsoft-Windows-Security-Auditing",
        "RecordId": 1001,
        "Keywords": -9218868437227405312,
        "Message": "An account failed to log on.",
        "Properties": [{"Value": v} for v in range(21)],
    }
    winlogbeat = {
        "@timestamp": "2020-07-22T20:29:36.414Z",
        "log": {"level": "information"},
        "winlog": {
            "event_id": "4771",
            "computer_name": "DC-01",
            "channel": "Security",
            "record_id": 887107,
            "event_data": {"TargetUserName": "bob", "IpAddress": "::ffff:172.16.66.1"},
        },
    }
    response = agent.client.post(EVENTS, [get_winevent, winlogbeat], format="json")
    assert response.status_code == 201, response.content
    first, second = SecurityEvent.objects.filter(
        event_id__in=response.json()["event_ids"]
    ).order_by("event_id")
    assert (first.event_code, first.computer, first.agent_record_id) == (
        4625,
        "WS-001.corp.local",
        1001,
    )
    assert first.severity == 3 and first.timestamp.year == 2020
    assert (second.event_code, second.computer, second.user_name) == (4771, "DC-01", "bob")
    assert second.source_ip == "::ffff:172.16.66.1"


@pytest.mark.django_db
def test_shipping_counts_as_a_heartbeat_for_an_offline_agent(
    agent, broadcasts, django_capture_on_commit_callbacks
):
    Agent.objects.filter(pk=agent.pk).update(
        status=AgentStatus.OFFLINE, last_seen=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        agent.client.post(EVENTS, [flat_event()], format="json")
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ONLINE
    assert timezone.now() - agent.last_seen < timedelta(minutes=1)
    assert [m["action"] for g, m in broadcasts if g == "siem.agents"] == ["online"]


@pytest.mark.django_db
def test_heartbeat_marks_the_agent_seen_and_records_its_version(agent):
    Agent.objects.filter(pk=agent.pk).update(last_seen=timezone.now() - timedelta(hours=1))
    response = agent.client.post(
        "/api/v1/agents/heartbeat/", {"version": "1.2.3", "ip_address": "10.0.0.9"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["agent_id"] == str(agent.agent_id) and body["status"] == "online"
    agent.refresh_from_db()
    assert agent.version == "1.2.3" and agent.ip_address == "10.0.0.9"
    assert timezone.now() - agent.last_seen < timedelta(minutes=1)


@pytest.mark.django_db
def test_heartbeat_with_a_bad_field_is_a_400(agent):
    response = agent.client.post(
        "/api/v1/agents/heartbeat/", {"ip_address": "not-an-ip"}, format="json"
    )
    assert response.status_code == 400 and "ip_address" in response.json()


@pytest.mark.django_db
def test_a_large_batch_stays_within_the_default_limit(agent, settings):
    records = jsonl_records("benign/evtxrs_security_background_B.jsonl")
    assert len(records) <= settings.AGENT_BATCH_MAX
    response = agent.client.post(EVENTS, json.loads(json.dumps(records)), format="json")
    assert response.status_code == 201 and response.json()["created"] == len(records)
