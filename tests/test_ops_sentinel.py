"""Redis through Sentinel (REDIS_SENTINELS / REDIS_SENTINEL_MASTER): a real redis-server, a
replica and a real `redis-sentinel` (Debian's package) on free ports.

A fresh process gets the settings from the environment, with REDIS_URL pointing at a port where
nothing listens — so everything that works went through the sentinel — and checks: the app's
own clients (presence, history, tickets through siem/redis.py), /readyz, the channel layer and
the Celery broker. Then a forced failover: new connections follow the new master.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from siem import settings as siem_settings

SENTINEL = shutil.which("redis-sentinel")
SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not SENTINEL or not SERVER, reason="needs redis-server and redis-sentinel"),
]
MASTER_NAME = "siemtest"
PASSWORD = "sentinel-test-pass"

CHECKS = r"""
import asyncio, json, django
django.setup()
from django.conf import settings
from django.test import Client

out = {}
from siem.redis import new_sync_client, sync_client
client = sync_client()
client.set("siem-sentinel-probe", "ok")
out["probe"] = client.get("siem-sentinel-probe").decode()

from realtime import presence, history
async def realtime_path():
    total = await presence.join("alerts", "member-1")
    seq = await history.current("alerts")
    return total, seq
out["presence_total"], seq = asyncio.run(realtime_path())
out["seq_positive"] = seq > 0
history.publish([("alerts", json.dumps({"type": "alert", "action": "created", "data": {}}))])
out["presence_count"] = presence.count("alerts")

r = Client().get("/readyz")
out["readyz"] = r.status_code

from channels.layers import get_channel_layer
async def layer_roundtrip():
    layer = get_channel_layer()
    name = await layer.new_channel()
    await layer.group_add("sentinel-test", name)
    await layer.group_send("sentinel-test", {"type": "probe", "n": 1})
    message = await asyncio.wait_for(layer.receive(name), 10)
    await layer.group_discard("sentinel-test", name)
    return message["n"]
out["layer"] = asyncio.run(layer_roundtrip())

from kombu import Connection
with Connection(settings.CELERY_BROKER_URL,
                transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
    queue = conn.SimpleQueue("siem-sentinel-test")
    queue.put({"hello": "broker"})
    message = queue.get(timeout=10)
    out["broker"] = message.payload["hello"]
    message.ack()
    queue.close()
print("RESULT " + json.dumps(out))
"""


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together while the kernel picks)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(port: int, password: str | None = PASSWORD, timeout: float = 15) -> redis.Redis:
    client = redis.Redis(port=port, password=password, socket_timeout=2)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return client
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def sentinel_setup(tmp_path: Path):
    master_port, replica_port, sentinel_port = free_ports(3)
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    common += ["--requirepass", PASSWORD, "--masterauth", PASSWORD]
    processes = [
        _start([SERVER, "--port", str(master_port), "--dir", str(tmp_path), *common]),
        _start(
            [SERVER, "--port", str(replica_port), "--dir", str(tmp_path), *common]
            + ["--replicaof", "127.0.0.1", str(master_port)]
        ),
    ]
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n"
        f"sentinel auth-pass {MASTER_NAME} {PASSWORD}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
        f"sentinel failover-timeout {MASTER_NAME} 5000\n"
    )
    processes.append(_start([SENTINEL, str(config)]))
    try:
        master = _wait(master_port)
        replica = _wait(replica_port)
        sentinel = _wait(sentinel_port, password=None)
        deadline = time.monotonic() + 20
        while replica.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "replica never synced"
            time.sleep(0.2)
        yield {
            "master": master,
            "replica": replica,
            "sentinel": sentinel,
            "ports": (master_port, replica_port, sentinel_port),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def run_checks(sentinel_port: int, prefix: str) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SIEM_TEST"))}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        DJANGO_SETTINGS_MODULE="siem.settings",
        DATABASE_URL="sqlite:///:memory:",
        ALLOWED_HOSTS="testserver",
        # Nothing listens on the URL's port: only the sentinel can lead to the master.
        REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{free_ports(1)[0]}/0",
        REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
        REDIS_SENTINEL_MASTER=MASTER_NAME,
        REDIS_KEY_PREFIX=prefix,
    )
    result = subprocess.run(
        [sys.executable, "-c", CHECKS],
        cwd=siem_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.timeout(900)  # several server processes start on a loaded machine
def test_every_redis_user_reaches_the_master_through_the_sentinel(sentinel_setup):
    master_port, replica_port, sentinel_port = sentinel_setup["ports"]
    result = run_checks(sentinel_port, "sentinel-a")
    assert result == {
        "probe": "ok",
        "presence_total": 1,
        "seq_positive": True,
        "presence_count": 1,
        "readyz": 200,
        "layer": 1,
        "broker": "broker",
    }
    # It really is the master on `master_port` that holds the data.
    assert sentinel_setup["master"].get("siem-sentinel-probe") == b"ok"
    assert sentinel_setup["master"].exists("sentinel-a:presence:alerts")

    # Failover: the replica becomes the master; a new process follows it.
    deadline = time.monotonic() + 30
    while True:
        try:
            sentinel_setup["sentinel"].execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            break
        except redis.exceptions.ResponseError as exc:
            # The sentinel learns of the replica from the master's INFO (every 10 s): until then
            # it has no replica to promote.
            if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    while True:
        host, port = sentinel_setup["sentinel"].execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
        )
        if (
            int(port) == replica_port
            and sentinel_setup["replica"].info("replication")["role"] == "master"
        ):
            break
        assert time.monotonic() < deadline, "failover did not complete"
        time.sleep(0.2)
    after = run_checks(sentinel_port, "sentinel-b")
    assert after["probe"] == "ok" and after["readyz"] == 200 and after["broker"] == "broker"
    assert sentinel_setup["replica"].exists("sentinel-b:presence:alerts")
