"""The dashboard statistics updater: statistics only while someone watches /ws/dashboard.

Presence is the real cross-process count in Redis, made by a real consumer connection
(WebsocketCommunicator through the ASGI stack); broadcasts are received from the real Redis.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import TestCase

from accounts.services import issue_access_token
from events.ai.base import Analysis
from events.models import SecurityEvent
from events.services import apply_analysis, create_events
from realtime.messages import CHANNELS
from realtime.tasks import broadcast_dashboard_statistics
from siem.statistics import compute_statistics
from tests.ai_helpers import broadcasts
from tests.ws_helpers import open_channel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def role_groups(django_db_setup, django_db_blocker):
    """Transactional tests flush the tables, including the role groups the migration made."""
    from django.contrib.auth.models import Group

    from accounts.roles import ROLES

    with django_db_blocker.unblock():
        for name in ROLES:
            Group.objects.get_or_create(name=name)


@pytest.fixture(autouse=True)
def no_presence_records():
    from realtime import presence

    def wipe():
        for channel in CHANNELS:
            presence._client().delete(presence.key(channel))

    wipe()
    yield
    wipe()


def test_nothing_is_sent_when_no_dashboard_client_is_connected(db):
    SecurityEvent.objects.create(computer="WS-1", event_code=4625, severity=3)

    sent, received = broadcasts(["dashboard"], broadcast_dashboard_statistics)

    assert sent is False
    assert received == {"dashboard": []}


def test_clients_on_other_channels_do_not_count(admin_user):
    token = issue_access_token(admin_user)[0]

    async def scenario():
        alerts = await open_channel("alerts", token)
        try:
            return await sync_to_async(broadcast_dashboard_statistics)()
        finally:
            await alerts.close()

    assert async_to_sync(scenario)() is False


def test_a_connected_dashboard_client_receives_the_statistics(admin_user):
    (event,) = create_events([{"computer": "WS-1", "event_code": 4625, "severity": 4}]).created
    apply_analysis(event, Analysis(80, "intrusion", "d"), provider="builtin")
    token = issue_access_token(admin_user)[0]

    def run_task():
        with TestCase.captureOnCommitCallbacks(execute=True):
            return broadcast_dashboard_statistics()

    async def scenario():
        client = await open_channel("dashboard", token)
        try:
            sent = await sync_to_async(run_task)()
            message = await client.receive(timeout=5)
            assert await client.nothing_more()
            return sent, message
        finally:
            await client.close()

    sent, message = async_to_sync(scenario)()

    assert sent is True
    assert message["type"] == "statistics" and message["action"] == "updated"
    expected = compute_statistics()
    expected.pop("updated_at")
    data = dict(message["data"])
    assert data.pop("updated_at").endswith("Z")
    assert data == expected
    assert data["events"]["total_24h"] == 1 and data["events"]["ai_attacks"] == 1

    # The client has gone: the next round sends nothing again.
    sent, received = broadcasts(["dashboard"], broadcast_dashboard_statistics)
    assert sent is False and received == {"dashboard": []}
