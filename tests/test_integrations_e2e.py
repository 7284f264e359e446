"""End to end: a real Celery worker on a real (private) Redis broker delivers notifications.

The worker process runs the route/deliver/digest tasks exactly as in production; the
endpoints are a loopback HTTP server in this test process: one healthy, one that hangs. An alert
created through the service (as ingestion and detection create them) reaches the healthy
endpoint within 10 s, signed, while the hanging one times out, is retried and given up, without
delaying the healthy one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.integration_helpers import Receiver
from tests.test_tasks_e2e import Process, manage

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent
REDIS_SERVER = shutil.which("redis-server", path=str(VENV_BIN)) or shutil.which("redis-server")
PORTS = range(8700, 8800)  # this suite's share of the team's port plan
SECRET = "e2e-webhook-secret-value"


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8700-8799")


@pytest.fixture
def broker():
    """A throw-away redis-server: no other suite's worker can take these tasks."""
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary")
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def shell(env: dict[str, str], code: str) -> str:
    return manage(env, "shell", "-c", code)


def test_a_real_worker_delivers_to_the_healthy_endpoint_while_the_other_hangs(
    tmp_path, broker, receiver
):
    receiver.script("/hang", ["hang"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTEGRATION_", "DJANGO_"))}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        SIEM_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        REDIS_URL=broker,
        REDIS_KEY_PREFIX=f"siem-notify-e2e-{uuid.uuid4().hex[:8]}",
        DEBUG="false",
        SECRET_KEY="e2e-only-secret-key-for-the-integrations-test",
        SITE_URL="https://siem.e2e.test",
        INTEGRATION_TIMEOUT_SEC="2",
        INTEGRATION_MAX_ATTEMPTS="2",
        INTEGRATION_RETRY_BACKOFF_SEC="1",
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONUNBUFFERED="1",
    )
    manage(env, "migrate", "--noinput")
    shell(
        env,
        "from integrations.services import create_integration as c;"
        f"c(actor=None, name='hung', kind='webhook', target='{receiver.base}/hang',"
        f" secret='{SECRET}');"
        f"c(actor=None, name='healthy', kind='webhook', target='{receiver.base}/ok',"
        f" secret='{SECRET}')",
    )
    worker = Process(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "siem",
            "worker",
            "--loglevel=INFO",
            "--pool=threads",
            "--concurrency=4",
            "--hostname",
            f"notify-e2e-{uuid.uuid4().hex[:6]}@%h",
        ],
        env,
    )
    try:
        worker.wait_for("ready.")
        out = shell(
            env,
            "import time; from alerts.services import create_alert;"
            "a = create_alert(title='Kerberoasting on DC-01', severity=5,"
            " category='credential_access', hostname='DC-01', mitre_techniques=['T1558.003']);"
            "print('ALERT', a.alert_id, time.time())",
        )
        _tag, alert_id, created = next(
            line.split() for line in out.splitlines() if line.startswith("ALERT")
        )
        (request,) = receiver.wait_for("/ok", 1, timeout=30)
        # The product promise (within 10 s of the commit), checked once, not a speed benchmark.
        received = time.time() - (time.monotonic() - request.received_at)
        latency = received - float(created)
        signature = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-SIEM-Signature"] == f"sha256={signature}"
        body = request.json()
        assert (body["type"], body["action"]) == ("alert", "created")
        assert body["data"]["alert_id"] == int(alert_id)
        assert body["url"] == f"https://siem.e2e.test/alerts/{alert_id}/"

        # The hung endpoint: two attempts, each cut at the 2 s timeout, then given up.
        receiver.wait_for("/hang", 2, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            log = json.loads(
                shell(
                    env,
                    "import json; from integrations.models import Delivery;"
                    "print(json.dumps(list(Delivery.objects.order_by('id').values_list("
                    "'integration__name', 'attempt', 'status', 'error'))))",
                )
                .strip()
                .splitlines()[-1]
            )
            if ["hung", 2, "failed", "timeout (ReadTimeout)"] in log:
                break
            assert time.monotonic() < deadline, log
            time.sleep(1)
        assert ["healthy", 1, "sent", ""] in log
        assert ["hung", 1, "retrying", "timeout (ReadTimeout)"] in log
        assert len(receiver.to("/ok")) == 1  # sent once, never again
        assert latency < 10, f"delivered {latency:.1f} s after the alert was created"
        assert SECRET not in worker.output
    finally:
        worker.stop()
