"""Agent enrollment: the key, disabled enrollment, re-enrollment and revoked tokens.

Callers: an agent holding the enrollment key (or a wrong one); `admin` revokes tokens.
"""

from __future__ import annotations

import logging

import jsonschema
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from agents import services
from agents.models import Agent, AgentStatus, hash_agent_token
from tests.test_agents_helpers import MESSAGE_SCHEMA, agent_client

KEY = "enroll-me-7f3a9c1e5b"
REGISTER = "/api/v1/agents/register/"
OTHER_ADDRESS = "10.9.8.7"


@pytest.fixture(autouse=True)
def enrollment_key(settings):
    settings.AGENT_ENROLLMENT_KEY = KEY


@pytest.fixture(autouse=True)
def no_counted_failures():
    """Wrong keys are counted per address in Redis (this run's own prefix): start from zero."""
    from siem.redis import client

    def wipe():
        keys = list(client().scan_iter(f"{settings.REDIS_KEY_PREFIX}:enroll-fail:*"))
        if keys:
            client().delete(*keys)

    wipe()
    yield
    wipe()


def register(hostname="WS-001", key=KEY, **extra):
    return APIClient().post(
        REGISTER, {"enrollment_key": key, "hostname": hostname, **extra}, format="json"
    )


@pytest.mark.django_db
def test_enrollment_returns_an_agent_id_and_a_token_stored_only_as_its_hash(
    broadcasts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = register(ip_address="10.1.2.3", os="Windows Server 2022", version="1.0")
    assert response.status_code == 201, response.content
    body = response.json()
    agent = Agent.objects.get(agent_id=body["agent_id"])
    assert agent.hostname == "WS-001" and agent.ip_address == "10.1.2.3"
    assert agent.status == AgentStatus.ONLINE and agent.os == "Windows Server 2022"
    assert agent.token_hash == hash_agent_token(body["agent_token"])
    assert body["agent_token"] not in agent.token_hash
    assert body["re_enrolled"] is False and body["batch_max"] >= 1
    assert [(group, msg["action"]) for group, msg in broadcasts] == [
        ("siem.agents", "registered"),
        ("siem.dashboard", "registered"),
    ]
    jsonschema.validate(broadcasts[0][1], MESSAGE_SCHEMA)


@pytest.mark.django_db
def test_enrollment_without_an_ip_address_records_the_peer_address():
    response = register()
    assert response.status_code == 201
    assert Agent.objects.get(agent_id=response.json()["agent_id"]).ip_address == "127.0.0.1"


@pytest.mark.django_db
def test_wrong_key_is_refused_and_logged_without_the_key(caplog):
    with caplog.at_level(logging.WARNING, logger="agents.api.views"):
        response = register(key="guess-" + KEY)
    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid enrollment key."}
    assert not Agent.objects.exists()
    warnings = [r for r in caplog.records if r.name == "agents.api.views"]
    assert len(warnings) == 1
    assert "wrong enrollment key" in warnings[0].getMessage()
    assert "WS-001" in warnings[0].getMessage()
    assert KEY not in caplog.text and "guess-" not in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"hostname": "WS-001"}, {"enrollment_key": 42, "hostname": "x"}])
def test_missing_or_non_string_key_is_refused(body):
    response = APIClient().post(REGISTER, body, format="json")
    assert response.status_code == 403
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_enrollment_is_disabled_when_no_key_is_configured(settings):
    settings.AGENT_ENROLLMENT_KEY = ""
    response = register(key="")
    assert response.status_code == 403
    assert "enrollment is disabled" in response.json()["detail"]
    assert "AGENT_ENROLLMENT_KEY" in response.json()["detail"]
    assert not Agent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"hostname": ""}, "hostname"),
        ({"hostname": "has space"}, "hostname"),
        ({"hostname": "x" * 256}, "hostname"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
        ({"version": "v" * 65}, "version"),
    ],
)
def test_bad_enrollment_fields_get_a_400_naming_the_field(extra, field):
    response = APIClient().post(
        REGISTER, {"enrollment_key": KEY, "hostname": "WS-001", **extra}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not Agent.objects.exists()


@pytest.mark.django_db
def test_enrollment_body_that_is_not_an_object_is_a_400():
    response = APIClient().post(REGISTER, [KEY], format="json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_reenrolling_a_known_hostname_keeps_the_agent_and_replaces_its_token():
    first = register(hostname="WS-007").json()
    second = register(hostname="ws-007", version="2.0")
    assert second.status_code == 201
    body = second.json()
    assert body["agent_id"] == first["agent_id"] and body["re_enrolled"] is True
    assert body["agent_token"] != first["agent_token"]
    assert Agent.objects.count() == 1
    assert Agent.objects.get().version == "2.0"
    old = agent_client(first["agent_token"]).post("/api/v1/agents/heartbeat/", {}, format="json")
    new = agent_client(body["agent_token"]).post("/api/v1/agents/heartbeat/", {}, format="json")
    assert old.status_code == 401 and new.status_code == 200


@pytest.mark.django_db
def test_a_host_whose_agent_was_revoked_cannot_reenroll_itself():
    first = register(hostname="WS-008").json()
    services.revoke_agent_token(Agent.objects.get(agent_id=first["agent_id"]))
    response = register(hostname="WS-008")
    assert response.status_code == 403
    assert "revoked by an administrator" in response.json()["detail"]
    Agent.objects.filter(hostname="WS-008").delete()  # what the message tells the admin to do
    assert register(hostname="WS-008").status_code == 201


@pytest.mark.django_db
def test_revoked_token_gets_401_on_heartbeat_and_events():
    body = register(hostname="WS-009").json()
    client = agent_client(body["agent_token"])
    assert client.post("/api/v1/agents/heartbeat/", {}, format="json").status_code == 200
    services.revoke_agent_token(Agent.objects.get(agent_id=body["agent_id"]))
    heartbeat = client.post("/api/v1/agents/heartbeat/", {}, format="json")
    events = client.post("/api/v1/agents/events/", [], format="json")
    assert heartbeat.status_code == 401 and events.status_code == 401
    assert heartbeat.json() == {"detail": "Agent token revoked"}


@pytest.mark.django_db
def test_unknown_agent_token_gets_401():
    response = agent_client("agt_not-a-real-token-at-all").post(
        "/api/v1/agents/heartbeat/", {}, format="json"
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid agent token"}
    assert response["WWW-Authenticate"].startswith("Agent")


@pytest.mark.django_db
def test_admin_action_revokes_the_selected_agents_tokens(admin_user):
    from django.test import Client

    body = register(hostname="WS-010").json()
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/agents/agent/",
        {"action": "revoke_tokens", "_selected_action": [body["agent_id"]]},
    )
    assert response.status_code == 302
    assert Agent.objects.get(agent_id=body["agent_id"]).token_revoked_at is not None
    assert services.authenticate_agent(body["agent_token"]) is None


@pytest.mark.django_db
def test_repeated_wrong_keys_from_one_address_are_throttled(settings):
    settings.ENROLLMENT_FAILURE_LIMIT = 3
    for _ in range(3):
        assert register(key="guess").status_code == 403
    blocked = register()  # even the right key, until the window ends
    assert blocked.status_code == 429
    assert 0 < int(blocked["Retry-After"]) <= 300
    assert "Too many wrong enrollment keys" in blocked.json()["detail"]
    other = APIClient(REMOTE_ADDR=OTHER_ADDRESS).post(
        REGISTER, {"enrollment_key": KEY, "hostname": "WS-OTHER"}, format="json"
    )
    assert other.status_code == 201
    assert not Agent.objects.filter(hostname="WS-001").exists()
