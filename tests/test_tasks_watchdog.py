"""The agent watchdog task: silent agents go offline once; a heartbeat brings them back once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from agents.models import Agent, AgentStatus
from agents.services import heartbeat, register_agent
from agents.tasks import mark_silent_agents_offline
from tests.ai_helpers import broadcasts, content

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_silent_agent_goes_offline_once_and_a_heartbeat_brings_it_back(settings):
    settings.AGENT_OFFLINE_AFTER_SEC = 300
    silent, _ = register_agent(hostname="WS-SILENT")
    talking, _ = register_agent(hostname="WS-TALKING")
    Agent.objects.filter(pk=silent.pk).update(last_seen=timezone.now() - timedelta(seconds=301))
    Agent.objects.filter(pk=talking.pk).update(last_seen=timezone.now() - timedelta(seconds=200))

    count, received = broadcasts(["agents", "dashboard"], mark_silent_agents_offline)

    assert count == 1
    (offline,) = received["agents"]
    assert offline["action"] == "offline"
    assert offline["data"]["hostname"] == "WS-SILENT"
    assert offline["data"]["status"] == "offline"
    assert offline["data"]["agent_id"] == str(silent.agent_id)
    assert content(received["dashboard"]) == content([offline])
    assert Agent.objects.get(pk=talking.pk).status == AgentStatus.ONLINE

    # Safe to run twice: an agent already offline is not announced again.
    count, received = broadcasts(["agents"], mark_silent_agents_offline)
    assert count == 0 and received == {"agents": []}

    _, received = broadcasts(["agents"], lambda: heartbeat(Agent.objects.get(pk=silent.pk)))
    assert [(m["action"], m["data"]["status"]) for m in received["agents"]] == [
        ("online", "online")
    ]
