"""End to end: two real daphne processes on one SQLite file and the real Redis, clients on both
(the `websockets` library, as in the guide's Python example), writes through the REST API and
the Django admin. Each client must get exactly the messages of its channel; counts must be
right across both processes, also after a client vanishes without a close frame and after a
whole process is killed; no token may reach any server output.

Users (password `Passw0rd!x`): `admin` (superuser, group admin), `analyst` (group analyst).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from realtime.manager import get_connection_manager
from tests.conftest import PASSWORD
from tests.ws_helpers import check
from tests.ws_servers import Cluster

pytestmark = pytest.mark.e2e

PORT_A, PORT_B = 8201, 8202
PRESENCE_TTL = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(
        tmp_path_factory.mktemp("ws-e2e"),
        [PORT_A, PORT_B],
        {
            "REALTIME_PRESENCE_TTL_SEC": str(PRESENCE_TTL),
            "REALTIME_PRESENCE_REFRESH_SEC": "1",
        },
    )
    cluster.prepare(PASSWORD)
    cluster.start_all()
    yield cluster
    cluster.stop_all()


def login(port: int, username: str) -> str:
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def api(port: int, token: str, method: str, path: str, body: dict | None = None) -> dict:
    response = httpx.request(
        method,
        f"http://127.0.0.1:{port}/api/v1/{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code in (200, 201, 204), (path, response.status_code, response.text)
    return response.json() if response.content else {}


def admin_session(port: int) -> tuple[httpx.Client, str]:
    """A browser-like session signed in to /admin/ (cookies + CSRF)."""
    session = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    session.get("/admin/login/")
    response = session.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "admin",
            "password": PASSWORD,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    assert response.status_code == 302, response.text[:500]
    return session, session.cookies["csrftoken"]  # rotated at login


def admin_action(port: int, action: str, alert_id: int) -> None:
    session, csrf = admin_session(port)
    try:
        response = session.post(
            "/admin/alerts/alert/",
            data={
                "action": action,
                "_selected_action": [str(alert_id)],
                "csrfmiddlewaretoken": csrf,
                "index": "0",
            },
        )
    finally:
        session.close()
    assert response.status_code == 302, response.text[:500]


class Listener:
    """One WebSocket client that records every message it receives."""

    def __init__(self, port: int, channel: str, token: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/{channel}?token={token}"
        self.channel = channel
        self.messages: list[dict] = []
        self.close_code: int | None = None

    async def open(self) -> Listener:
        self.ws = await websockets.connect(self.url, open_timeout=20)
        hello = check(json.loads(await asyncio.wait_for(self.ws.recv(), 10)))
        assert hello["type"] == "connection" and hello["channel"] == self.channel
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(check(json.loads(raw)))
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    def kinds(self) -> list[tuple]:
        return [(m["type"], m.get("action", m.get("severity"))) for m in self.messages]

    def take(self) -> list[tuple]:
        kinds = self.kinds()
        self.messages.clear()
        return kinds

    def vanish(self) -> None:
        """Drop the TCP connection without a close frame (a laptop lid, a crashed browser)."""
        self.ws.transport.abort()


async def settle(listeners, quiet: float = 1.0, limit: float = 20) -> None:
    """Wait until no listener has received anything for `quiet` seconds."""
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline:
        total = sum(len(x.messages) for x in listeners)
        if total == last:
            return
        last = total
        await asyncio.sleep(quiet)


async def until(predicate, limit: float = 20, step: float = 0.2):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(step)
    return predicate()


def run(coro):
    return asyncio.run(coro)


def test_two_processes_deliver_exactly_count_across_and_revoke(cluster, settings):
    settings.REDIS_KEY_PREFIX = cluster.prefix  # count what the servers record
    manager = get_connection_manager()
    admin_token = login(PORT_A, "admin")
    analyst_token = login(PORT_B, "analyst")

    async def scenario():
        # 1. Clients on both processes (sequential, so the logged totals are predictable).
        a_alerts = await Listener(PORT_A, "alerts", admin_token).open()
        b_alerts = await Listener(PORT_B, "alerts", analyst_token).open()
        a_dashboard = await Listener(PORT_A, "dashboard", admin_token).open()
        a_events = await Listener(PORT_A, "events", analyst_token).open()
        b_incidents = await Listener(PORT_B, "incidents", admin_token).open()
        b_notifications = await Listener(PORT_B, "notifications", admin_token).open()
        b_agents = await Listener(PORT_B, "agents", analyst_token).open()
        everyone = [
            a_alerts,
            b_alerts,
            a_dashboard,
            a_events,
            b_incidents,
            b_notifications,
            b_agents,
        ]
        assert manager.get_channel_count("alerts") == 2
        assert manager.get_channel_count("dashboard") == 1
        assert manager.get_total_connections() == 7
        # A browser page on a foreign origin is refused at the handshake: HTTP 403.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(a_alerts.url, origin="http://evil.example.test")
        assert refused.value.response.status_code == 403

        # 2. Writes through the REST API of either process, and through the admin.
        alert = api(
            PORT_A,
            analyst_token,
            "POST",
            "alerts/",
            {
                "title": "Multiple failed login attempts",
                "severity": 4,
                "category": "brute_force",
                "hostname": "WS-001",
            },
        )
        api(PORT_B, analyst_token, "POST", f"alerts/{alert['alert_id']}/acknowledge/")
        api(
            PORT_A,
            analyst_token,
            "POST",
            "events/",
            {
                "computer": "WS-001",
                "event_code": 1000,
                "severity": 1,
                "message": "e2e benign application event",
                "source_type": "Application",
            },
        )
        incident = api(
            PORT_B, admin_token, "POST", "incidents/", {"title": "Suspicious logons", "severity": 3}
        )
        api(PORT_A, admin_token, "POST", f"incidents/{incident['incident_id']}/escalate/")
        admin_action(PORT_B, "resolve_selected", alert["alert_id"])
        await settle(everyone)

        alert_flow = [("alert", "created"), ("alert", "acknowledged"), ("alert", "resolved")]
        incident_flow = [("incident", "created"), ("incident", "escalated")]
        assert a_alerts.take() == alert_flow
        assert b_alerts.take() == alert_flow
        assert a_events.take() == [("event", "created")]
        assert b_incidents.take() == incident_flow
        assert b_notifications.take() == []
        assert b_agents.take() == []
        dashboard = a_dashboard.take()
        assert sorted(dashboard) == sorted(alert_flow + incident_flow + [("event", "created")])
        assert [k for k in dashboard if k[0] == "alert"] == alert_flow  # in order

        # 3. A client vanishes without a close frame: the server notices, counts follow.
        b_alerts.vanish()
        assert await until(lambda: manager.get_channel_count("alerts") == 1)
        assert manager.get_total_connections() == 6

        # 4. Logout of the admin token closes its sockets on both processes (4003).
        api(PORT_A, admin_token, "POST", "auth/logout")
        admin_sockets = [a_alerts, a_dashboard, b_incidents, b_notifications]
        assert await until(lambda: all(x.close_code is not None for x in admin_sockets), 10)
        for listener in admin_sockets:
            assert listener.messages == [{"type": "error", "message": "Invalid token"}]
            assert listener.close_code == 4003
        assert await until(lambda: manager.get_total_connections() == 2)
        assert a_events.close_code is None and b_agents.close_code is None

        # 5. A whole process dies (SIGKILL): its sockets' records expire after the TTL.
        cluster.kill(PORT_B)
        assert await until(lambda: manager.get_total_connections() == 1, PRESENCE_TTL + 10)
        assert manager.get_channel_count("events") == 1
        await a_events.ws.close()
        assert await until(lambda: manager.get_total_connections() == 0)

    run(scenario())

    cluster.stop_all()
    log_a, log_b = cluster.log(PORT_A), cluster.log(PORT_B)
    # The guide's lines, with totals counted across both processes.
    assert "INFO - User admin connecting to alerts channel" in log_a
    assert "INFO - Client connected to channel 'alerts' (total: 1)" in log_a
    assert "INFO - User analyst connecting to alerts channel" in log_b
    assert "INFO - Client connected to channel 'alerts' (total: 2)" in log_b
    assert "INFO - User analyst disconnected from alerts channel" in log_b
    assert "INFO - Client disconnected from channel 'alerts' (remaining: 1)" in log_b
    assert "INFO - User admin disconnected from alerts channel" in log_a
    assert "INFO - Client disconnected from channel 'alerts' (remaining: 0)" in log_a
    # No token, and no query string, anywhere in the servers' output (access log included).
    for log in (log_a, log_b):
        assert "WSCONNECT /ws/alerts" in log_a  # the access log is on, and redacted
        for secret in (admin_token, analyst_token, admin_token[-20:], analyst_token[-20:]):
            assert secret not in log
        assert "token=" not in log
        assert "?" not in "".join(line for line in log.splitlines() if "WSCONNECT" in line)


def test_a_client_that_stops_reading_is_cut_off_and_the_others_miss_nothing(
    tmp_path_factory, settings
):
    """Slow-client protection: daphne's buffer for a socket is bounded (4008, then abort)."""
    cluster = Cluster(
        tmp_path_factory.mktemp("ws-slow"),
        [8203],
        {"REALTIME_MAX_BUFFER_BYTES": "65536", "REALTIME_SLOW_CLIENT_SEC": "1"},
    )
    cluster.prepare(PASSWORD)
    cluster.start_all()
    settings.REDIS_KEY_PREFIX = cluster.prefix
    manager = get_connection_manager()
    token = login(8203, "admin")
    bulky = "x" * 20_000  # 600 messages of ~20 KB: far more than the kernel buffers hold
    total = 600

    async def scenario():
        healthy = await Listener(8203, "notifications", token).open()
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # no receive autotuning
        raw.connect(("127.0.0.1", 8203))
        stuck = await websockets.connect(healthy.url, sock=raw, max_size=None, max_queue=None)
        assert json.loads(await stuck.recv())["type"] == "connection"
        stuck.transport.pause_reading()  # a frozen tab
        assert manager.get_channel_count("notifications") == 2
        for i in range(total):
            await manager.broadcast_notification(
                {
                    "event_id": i,
                    "computer": "DC-01",
                    "ai_score": 90,
                    "ai_category": "intrusion",
                    "ai_description": bulky,
                    "message": f"burst {i}",
                },
                severity="high",
            )
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # a steady stream over ~3 s, not one burst
        assert await until(lambda: len(healthy.messages) >= total, 60), len(healthy.messages)
        assert [m["data"]["event_id"] for m in healthy.messages] == list(range(total))
        assert await until(lambda: manager.get_channel_count("notifications") == 1, 30)
        stuck.transport.resume_reading()
        try:
            while True:
                await asyncio.wait_for(stuck.recv(), 10)
        except ConnectionClosed:
            pass
        await healthy.ws.close()
        return stuck.close_code

    try:
        code = run(scenario())
    finally:
        cluster.stop_all()
    # 4008 if the close frame got through before the abort, 1006 (no close frame) otherwise.
    assert code in (4008, 1006)
    log = cluster.log(8203)
    assert "Closing a WebSocket that stopped reading" in log
    assert "(close 4008)" in log
    assert "Client disconnected from channel 'notifications' (remaining: 1)" in log


def test_a_client_whose_server_is_killed_mid_stream_resumes_elsewhere_losing_nothing(
    tmp_path_factory,
):
    """Issue 9: `?since=` across processes — kill -9 the client's server while alerts flow,
    reconnect to the other one with the last seq seen: every alert exactly once, in order."""
    cluster = Cluster(tmp_path_factory.mktemp("ws-resume"), [8204, 8205])
    cluster.prepare(PASSWORD)
    cluster.start_all()
    token = login(8204, "analyst")
    total = 60

    def write(i: int) -> None:
        api(
            8204,
            token,
            "POST",
            "alerts/",
            {"title": f"stream {i}", "severity": 3, "category": "test", "hostname": "WS-001"},
        )

    async def writer():
        for i in range(total):
            await asyncio.to_thread(write, i)
            await asyncio.sleep(0.03)

    async def scenario():
        first = await Listener(8205, "alerts", token).open()
        writing = asyncio.ensure_future(writer())
        assert await until(lambda: len(first.messages) >= 15, 60)
        cluster.kill(8205)  # mid-stream, no goodbye
        assert await until(lambda: first.close_code is not None, 10)
        last_seen = first.messages[-1]["seq"]
        resumed = Listener(8204, "alerts", token)
        resumed.url += f"&since={last_seen}"
        await resumed.open()
        await writing
        assert await until(lambda: len(first.messages) + len(resumed.messages) >= total, 30)
        await asyncio.sleep(0.5)  # and nothing more
        await resumed.ws.close()
        return first.messages + resumed.messages

    try:
        got = run(scenario())
    finally:
        cluster.stop_all()
    titles = [m["data"]["title"] for m in got]
    assert titles == [f"stream {i}" for i in range(total)]
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + total))
