"""Connection counts across processes (Redis presence records) and the guide's monitoring API.

Another server process is played by writing its presence records straight into Redis, exactly
as its consumers would (the end-to-end test runs two real daphne processes). User: `admin`.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from accounts.services import issue_access_token
from realtime import presence
from realtime.manager import get_connection_manager
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import open_channel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(admin_user) -> str:
    return issue_access_token(admin_user)[0]


def other_process_socket(channel: str, member: str, expires_in: float) -> None:
    presence._client().zadd(presence.key(channel), {member: time.time() + expires_in})


def test_counts_follow_connects_and_disconnects(token):
    manager = get_connection_manager()

    async def scenario():
        first = await open_channel("alerts", token)
        second = await open_channel("alerts", token)
        dash = await open_channel("dashboard", token)
        seen = [manager.get_channel_count("alerts"), manager.get_total_connections()]
        await first.close()
        seen += [manager.get_channel_count("alerts"), manager.get_total_connections()]
        await second.close()
        await dash.close()
        seen += [manager.get_channel_count("alerts"), manager.get_total_connections()]
        return seen

    assert async_to_sync(scenario)() == [2, 3, 1, 2, 0, 0]


def test_counts_include_other_processes_and_skip_expired_records(token, caplog):
    other_process_socket("alerts", "other-process!live", expires_in=30)
    other_process_socket("alerts", "dead-process!stale", expires_in=-1)
    manager = get_connection_manager()

    async def scenario():
        client = await open_channel("alerts", token)
        count = manager.get_channel_count("alerts")
        await client.close()
        return count

    caplog.set_level("INFO", logger="realtime")
    assert async_to_sync(scenario)() == 2
    assert manager.get_channel_count("alerts") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "realtime"]
    assert "Client connected to channel 'alerts' (total: 2)" in lines
    assert "Client disconnected from channel 'alerts' (remaining: 1)" in lines


def test_records_of_a_process_that_stops_refreshing_expire(settings):
    other_process_socket("events", "vanished-process!a", expires_in=0.3)
    manager = get_connection_manager()
    assert manager.get_channel_count("events") == 1
    time.sleep(0.5)
    assert manager.get_channel_count("events") == 0
    assert manager.get_total_connections() == 0


def test_a_live_process_keeps_its_records_alive_past_the_ttl(token, settings):
    settings.REALTIME_PRESENCE_TTL_SEC = 0.6
    settings.REALTIME_PRESENCE_REFRESH_SEC = 0.1
    manager = get_connection_manager()

    async def scenario():
        client = await open_channel("agents", token)
        await asyncio.sleep(1.5)  # well past the TTL: only the refresher keeps it counted
        count = manager.get_channel_count("agents")
        await client.close()
        return count

    assert async_to_sync(scenario)() == 1


def test_counts_are_zero_not_an_error_when_redis_is_unreachable(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    manager = get_connection_manager()
    assert manager.get_channel_count("alerts") == 0
    assert manager.get_total_connections() == 0
    assert "Redis unreachable" in caplog.text


def test_session_recheck_handles_more_sessions_than_one_query_can_list(admin_user):
    """The safety-net re-check asks in chunks (SQL Server: at most 2,100 parameters)."""
    from accounts.models import Session
    from realtime.consumers import _inactive_jtis

    live = [issue_access_token(admin_user)[1].jti for _ in range(3)]
    Session.objects.filter(jti=live[0]).update(
        revoked_at=Session.objects.get(jti=live[0]).issued_at
    )
    unknown = [f"gone-{i}" for i in range(1200)]
    assert _inactive_jtis(live + unknown) == {live[0], *unknown}
