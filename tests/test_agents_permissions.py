"""Who may call the agent endpoints: agents ship and heartbeat, users read the agent list.

Callers (the `clients` fixture of tests/conftest.py): `admin`, `analyst`, `viewer` with Bearer
tokens, `norole` (logged in, no role), `anonymous`, and `agent` (Agent token of WS-AGENT).
"""

from __future__ import annotations

import pytest

from agents.models import Agent

USER_STATUS = {"admin": 200, "analyst": 200, "viewer": 200, "norole": 403, "anonymous": 401}
EVENT = {"event_code": 4625, "severity": 3, "message": "Failed login", "source_type": "Windows"}


@pytest.mark.django_db
@pytest.mark.parametrize("caller", [*USER_STATUS, "agent"])
def test_agent_list_and_detail_are_for_users_of_any_role(clients, caller):
    agent = Agent.objects.get(hostname="WS-AGENT")
    expected = USER_STATUS.get(caller, 401)
    listing = clients[caller].get("/api/v1/agents/")
    detail = clients[caller].get(f"/api/v1/agents/{agent.agent_id}")
    assert (listing.status_code, detail.status_code) == (expected, expected)
    if expected == 200:
        assert listing.json()["results"][0]["hostname"] == "WS-AGENT"
        assert detail.json()["agent_id"] == str(agent.agent_id)
        assert "token_hash" not in detail.json() and detail.json()["token_active"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("caller", ["admin", "analyst", "viewer", "norole", "anonymous"])
def test_user_tokens_are_refused_on_agent_only_endpoints(clients, caller):
    heartbeat = clients[caller].post("/api/v1/agents/heartbeat/", {}, format="json")
    events = clients[caller].post("/api/v1/agents/events/", [EVENT], format="json")
    assert (heartbeat.status_code, events.status_code) == (401, 401)


@pytest.mark.django_db
def test_agent_token_works_on_agent_endpoints_with_or_without_trailing_slash(clients):
    agent = clients["agent"]
    assert agent.post("/api/v1/agents/heartbeat", {}, format="json").status_code == 200
    assert agent.post("/api/v1/agents/heartbeat/", {}, format="json").status_code == 200
    assert agent.post("/api/v1/agents/events", [EVENT], format="json").status_code == 201
    assert agent.post("/api/v1/agents/events/", [EVENT], format="json").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/events/"),
        ("post", "/api/v1/events/"),
        ("post", "/api/v1/events/bulk/"),
        ("get", "/api/v1/alerts/"),
        ("get", "/api/v1/incidents/"),
        ("get", "/api/v1/auth/me"),
        ("get", "/api/v1/dashboard/statistics/"),
    ],
)
def test_agent_tokens_are_refused_on_user_endpoints(clients, method, path):
    response = getattr(clients["agent"], method)(
        path, EVENT if method == "post" else None, format="json"
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_unknown_agent_id_is_a_404_for_users(clients):
    response = clients["viewer"].get("/api/v1/agents/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


@pytest.mark.django_db
def test_agent_list_filters_by_status(clients):
    Agent.objects.create(hostname="WS-OFF", status="offline", token_hash="x" * 64)
    response = clients["viewer"].get("/api/v1/agents/?status=offline")
    assert [a["hostname"] for a in response.json()["results"]] == ["WS-OFF"]
