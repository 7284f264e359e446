"""Agent services: enrollment with a hashed token, heartbeats, the watchdog, revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents import services
from agents.models import Agent, AgentStatus, hash_agent_token


@pytest.mark.django_db
def test_register_stores_only_the_token_hash(broadcasts, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        agent, token = services.register_agent(
            hostname="WS-001", ip_address="10.0.0.8", os="Windows 11"
        )
    stored = Agent.objects.get(pk=agent.pk)
    assert stored.token_hash == hash_agent_token(token) and token not in stored.token_hash
    assert services.authenticate_agent(token) == stored
    assert [(g, m["action"]) for g, m in broadcasts] == [
        ("siem.agents", "registered"),
        ("siem.dashboard", "registered"),
    ]
    assert broadcasts[0][1]["data"]["agent_id"] == str(agent.agent_id)


@pytest.mark.django_db
def test_watchdog_marks_silent_agents_offline_once_and_heartbeat_brings_them_back(
    broadcasts, django_capture_on_commit_callbacks
):
    agent, _token = services.register_agent(hostname="WS-002")
    Agent.objects.filter(pk=agent.pk).update(last_seen=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.mark_silent_agents_offline() == 1
        assert services.mark_silent_agents_offline() == 0  # broadcast once, not every sweep
        services.heartbeat(agent)
        services.heartbeat(agent)  # already online: no second `online`
    actions = [m["action"] for g, m in broadcasts if g == "siem.agents"]
    assert actions == ["offline", "online"]
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ONLINE


@pytest.mark.django_db
def test_revoked_token_no_longer_authenticates():
    agent, token = services.register_agent(hostname="WS-003")
    assert services.revoke_agent_token(agent) is True
    assert services.authenticate_agent(token) is None
    assert services.revoke_agent_token(agent) is False
