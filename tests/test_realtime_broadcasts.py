"""Writes reach exactly the right sockets: services → manager → Redis channel layer → consumers.

One client per channel listens while a service (or the manager directly) writes; each client
must receive exactly the messages SPEC routes to its channel, nothing else, each valid against
the shared schema. Users: `admin` (group admin) from conftest.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from accounts.services import issue_access_token
from agents import services as agent_services
from alerts import services as alert_services
from events import services as event_services
from incidents import services as incident_services
from realtime.manager import get_connection_manager
from realtime.messages import CHANNELS
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import open_channel

pytestmark = pytest.mark.django_db(transaction=True)

# A benign event: no detection rule fires on it, so the only broadcasts are the test's own.
EVENT = {
    "computer": "WS-001",
    "event_code": 1000,
    "severity": 3,
    "message": "Application event",
    "source_type": "Application",
}
ALERT = {
    "title": "Multiple failed login attempts",
    "severity": 4,
    "category": "brute_force",
    "hostname": "WS-001",
}
NOTIFICATION = {
    "event_id": 12345,
    "computer": "DC-01",
    "ai_score": 95,
    "ai_category": "intrusion",
    "ai_description": "Attack on the domain controller",
    "message": "Multiple failed login attempts to DC-01",
}


async def listen_all(token: str) -> dict:
    return {channel: await open_channel(channel, token) for channel in CHANNELS}


async def drain(clients: dict) -> dict[str, list[tuple]]:
    """Everything each client got until a short silence, as (type, action-or-severity)."""
    got: dict[str, list[tuple]] = {}
    for channel, client in clients.items():
        got[channel] = []
        while not await client.nothing_more(0.4):
            message = await client.receive()
            got[channel].append((message["type"], message.get("action", message.get("severity"))))
        await client.close()
    return got


def expect(*pairs, to: tuple[str, ...]) -> dict[str, list[tuple]]:
    return {channel: list(pairs) if channel in to else [] for channel in CHANNELS}


@pytest.fixture
def token(admin_user) -> str:
    return issue_access_token(admin_user)[0]


def test_event_writes_reach_events_and_dashboard_only(token):
    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(event_services.create_events)([EVENT, EVENT])
        return await drain(clients)

    got = async_to_sync(scenario)()
    assert got == expect(("event", "created"), ("event", "created"), to=("events", "dashboard"))


def test_alert_lifecycle_reaches_alerts_and_dashboard_in_order(token, admin_user, analyst):
    def lifecycle():
        alert = alert_services.create_alert(**ALERT, actor=admin_user)
        alert = alert_services.acknowledge_alert(alert, actor=admin_user)
        alert = alert_services.assign_alert(alert, actor=admin_user, assigned_to="analyst")
        alert = alert_services.update_alert(alert, actor=admin_user, severity=5)
        alert = alert_services.record_repeat(alert)
        alert_services.resolve_alert(alert, actor=admin_user, resolution="contained")

    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(lifecycle)()
        return await drain(clients)

    got = async_to_sync(scenario)()
    assert got == expect(
        ("alert", "created"),
        ("alert", "acknowledged"),
        ("alert", "updated"),
        ("alert", "updated"),
        ("alert", "updated"),
        ("alert", "resolved"),
        to=("alerts", "dashboard"),
    )


def test_acknowledged_alert_message_has_the_guides_fields(token, admin_user, analyst):
    async def scenario():
        client = await open_channel("alerts", token)

        def write():
            alert = alert_services.create_alert(**ALERT)
            return alert_services.acknowledge_alert(alert, actor=admin_user, assigned_to="analyst")

        alert = await database_sync_to_async(write)()
        created, acknowledged = await client.receive(), await client.receive()
        await client.close()
        return alert, created, acknowledged

    alert, created, acknowledged = async_to_sync(scenario)()
    assert created["data"]["status"] == "new"
    assert {k: created["data"][k] for k in ALERT} == ALERT
    assert acknowledged["action"] == "acknowledged"
    assert acknowledged["data"]["alert_id"] == alert.alert_id
    assert acknowledged["data"]["status"] == "acknowledged"
    assert acknowledged["data"]["assigned_to"] == "analyst"
    assert acknowledged["data"]["acknowledged_at"]


def test_incident_lifecycle_reaches_incidents_and_dashboard(token, admin_user):
    def lifecycle():
        incident = incident_services.create_incident(title="Lateral movement", severity=4)
        incident = incident_services.escalate_incident(incident, actor=admin_user)
        incident = incident_services.update_incident(incident, actor=admin_user, severity=5)
        incident_services.close_incident(incident, actor=admin_user)

    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(lifecycle)()
        return await drain(clients)

    got = async_to_sync(scenario)()
    assert got == expect(
        ("incident", "created"),
        ("incident", "escalated"),
        ("incident", "updated"),
        ("incident", "closed"),
        to=("incidents", "dashboard"),
    )


def test_agent_status_changes_reach_agents_and_dashboard(token):
    def lifecycle():
        agent, _token = agent_services.register_agent(hostname="WS-001")
        agent_services.mark_offline(agent)
        agent_services.heartbeat(agent)
        agent_services.heartbeat(agent)  # already online: no second message

    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(lifecycle)()
        return await drain(clients)

    got = async_to_sync(scenario)()
    assert got == expect(
        ("agent", "registered"),
        ("agent", "offline"),
        ("agent", "online"),
        to=("agents", "dashboard"),
    )


def test_notifications_reach_notifications_and_dashboard_statistics_only_dashboard(token):
    manager = get_connection_manager()

    def write():
        manager.broadcast_notification(NOTIFICATION, severity="critical")
        from siem.statistics import compute_statistics

        manager.broadcast_statistics(compute_statistics())

    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(write)()
        return await drain(clients)

    got = async_to_sync(scenario)()
    assert got == {
        **expect(to=()),
        "notifications": [("notification", "critical")],
        "dashboard": [("notification", "critical"), ("statistics", "updated")],
    }


def test_manager_is_awaitable_from_async_code(token):
    """The guide's `await manager.broadcast_alert(alert_data, action=...)` form."""
    manager = get_connection_manager()
    data = {
        "alert_id": 42,
        "status": "acknowledged",
        "assigned_to": "analyst",
        "acknowledged_at": "2025-01-01T12:05:00",
    }

    async def scenario():
        client = await open_channel("alerts", token)
        await manager.broadcast_alert(data, action="acknowledged")
        await manager.broadcast_event({**EVENT, "event_id": 12345})
        message = await client.receive()
        assert await client.nothing_more()
        await client.close()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "alert" and message["action"] == "acknowledged"
    assert message["data"] == data


def test_rolled_back_write_reaches_no_socket(token, admin_user):
    from django.db import transaction

    def write_then_fail():
        try:
            with transaction.atomic():
                alert_services.create_alert(**ALERT, actor=admin_user)
                raise RuntimeError("boom")
        except RuntimeError:
            pass

    async def scenario():
        client = await open_channel("alerts", token)
        await database_sync_to_async(write_then_fail)()
        silent = await client.nothing_more(0.5)
        await client.close()
        return silent

    assert async_to_sync(scenario)()


def test_many_messages_arrive_complete_and_in_order(token):
    """300 events in one bulk write: the channel layer must not drop any (capacity limits)."""
    items = [{**EVENT, "message": f"event {i}"} for i in range(300)]

    async def scenario():
        client = await open_channel("dashboard", token)
        await database_sync_to_async(event_services.create_events)(items)
        received = [(await client.receive())["data"]["message"] for _ in items]
        assert await client.nothing_more()
        await client.close()
        return received

    assert async_to_sync(scenario)() == [item["message"] for item in items]


def test_layer_fanout_mode_delivers_and_revokes_the_same(admin_user, settings):
    """REALTIME_FANOUT=layer (Channels groups on CHANNEL_LAYERS) behaves exactly like the hub."""
    from accounts.services import revoke_session

    settings.REALTIME_FANOUT = "layer"
    token, session = issue_access_token(admin_user)

    async def scenario():
        clients = await listen_all(token)
        await database_sync_to_async(alert_services.create_alert)(**ALERT)
        await database_sync_to_async(event_services.create_events)([EVENT])
        got = {}
        for channel, client in clients.items():
            got[channel] = []
            while not await client.nothing_more(0.4):
                message = await client.receive()
                got[channel].append((message["type"], message.get("action")))
        await database_sync_to_async(revoke_session)(session)
        for client in clients.values():
            assert await client.receive() == {"type": "error", "message": "Invalid token"}
            assert await client.receive_close() == 4003
        return got

    got = async_to_sync(scenario)()
    assert got == {
        **expect(to=()),
        "alerts": [("alert", "created")],
        "events": [("event", "created")],
        "dashboard": [("alert", "created"), ("event", "created")],
    }
