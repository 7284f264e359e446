"""End to end: a real Celery worker with beat and a real daphne, on real Redis (database 5).

An event posted through the REST API is analyzed by the beat-driven AI analyzer (through the
real `openai` client against a loopback chat-completions server in this test process); the
`notification` reaches a real WebSocket client on /ws/notifications, and the dashboard client
receives the notification, the automatic alert and the periodic `statistics`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.ai_helpers import FakeLLM, verdicts
from tests.ws_helpers import check

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PORTS = range(8310, 8400)  # this suite's share of the team's port plan
PASSWORD = "Passw0rd!x"


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8310-8399")


class Process:
    """A child process whose output is collected; stopped by its own PID (and group) only."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout))
        self.reader.daemon = True
        self.reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, f"exited early:\n{self.output}"
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{self.output}"
            time.sleep(0.2)

    def wait_for_port(self, port: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"exited early:\n{self.output}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"port {port} never opened:\n{self.output}"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def http_json(url: str, body: dict, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def receive_until(ws, predicate, timeout: float = 60) -> list[dict]:
    """Messages (schema-checked) until one satisfies `predicate`; all of them are returned."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; received {seen}"
        message = check(json.loads(ws.recv(timeout=remaining)))
        seen.append(message)
        if predicate(message):
            return seen


@pytest.fixture
def llm():
    fake = FakeLLM().start()
    yield fake
    fake.stop()


@pytest.mark.e2e
def test_worker_and_beat_deliver_ai_notifications_and_statistics_to_websocket_clients(
    tmp_path, llm
):
    scores = {"DC-E2E": 95, "WS-QUIET": 20}
    llm.behaviour = verdicts(lambda e: scores.get(e["computer"], 0), "credential_access")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "DJANGO_"))}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        SIEM_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/5",
        REDIS_KEY_PREFIX=f"siem-ai-e2e-{uuid.uuid4().hex[:8]}",
        DEBUG="false",
        SECRET_KEY="e2e-only-secret-key-for-the-ai-tasks-test",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        AI_PROVIDER="openai",
        AI_BASE_URL=llm.base_url,
        AI_MODEL="e2e-model",
        AI_TIMEOUT_SEC="10",
        AI_PROCESS_INTERVAL_SEC="2",
        DASHBOARD_UPDATE_INTERVAL_SEC="2",
        AI_RETRY_BACKOFF_SEC="0",
        PYTHONUNBUFFERED="1",
    )
    manage(env, "migrate", "--noinput")
    manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User;"
        f"u = User.objects.create_user('e2e-admin', password='{PASSWORD}');"
        "u.groups.add(Group.objects.get(name='admin'))",
    )
    daphne = Process(
        [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "siem.asgi:application"],
        env,
    )
    worker = Process(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "siem",
            "worker",
            "-B",
            "--loglevel=INFO",
            "--pool=solo",
            "--schedule",
            str(tmp_path / "celerybeat-schedule"),
            "--hostname",
            f"ai-e2e-{port}@%h",
        ],
        env,
    )
    try:
        worker.wait_for("ready.")
        daphne.wait_for_port(port)
        base = f"http://127.0.0.1:{port}"
        status, login = http_json(
            f"{base}/api/v1/auth/login", {"username": "e2e-admin", "password": PASSWORD}
        )
        assert status == 200, login
        token = login["access_token"]

        with (
            connect(f"ws://127.0.0.1:{port}/ws/notifications?token={token}") as notes,
            connect(f"ws://127.0.0.1:{port}/ws/dashboard?token={token}") as dashboard,
        ):
            for ws, channel in ((notes, "notifications"), (dashboard, "dashboard")):
                hello = check(json.loads(ws.recv(timeout=10)))
                assert (hello["type"], hello["channel"]) == ("connection", channel)

            # With a dashboard client connected, beat's updater sends statistics.
            first = receive_until(dashboard, lambda m: m["type"] == "statistics")[-1]
            assert set(first["data"]) >= {"events", "alerts", "incidents", "agents", "updated_at"}

            created = {}
            for computer in scores:
                status, body = http_json(
                    f"{base}/api/v1/events/",
                    {
                        "computer": computer,
                        "event_code": 4688,
                        "severity": 3,
                        "message": f"A new process has been created on {computer}",
                        "source_type": "Windows Security",
                        "raw": {"CommandLine": "mimikatz.exe sekurlsa::logonpasswords"},
                    },
                    token,
                )
                assert status == 201, body
                created[computer] = body["event_id"]

            # The analyzer (beat, every 2 s) scores DC-E2E 95: critical notification.
            note = receive_until(notes, lambda m: m["type"] == "notification")[-1]
            assert note["severity"] == "critical"
            assert note["data"]["event_id"] == created["DC-E2E"]
            assert note["data"]["ai_score"] == 95
            assert note["data"]["ai_category"] == "credential_access"
            assert note["data"]["computer"] == "DC-E2E"

            # The dashboard sees the same notification, the automatic alert, and statistics
            # that now count the AI attack.
            got = {"notification": None, "alert": None, "statistics": None}

            def complete(message: dict) -> bool:
                kind = message["type"]
                if kind == "notification":
                    got["notification"] = message
                elif kind == "alert" and message["action"] == "created":
                    got["alert"] = message
                elif kind == "statistics" and message["data"]["events"]["ai_attacks"] >= 1:
                    got["statistics"] = message
                return all(got.values())

            receive_until(dashboard, complete)
            assert got["notification"]["data"] == note["data"]
            assert got["alert"]["data"]["hostname"] == "DC-E2E"
            assert got["alert"]["data"]["category"] == "credential_access"
            assert got["statistics"]["data"]["alerts"]["new"] >= 1

            # The quiet event (score 20) was analyzed too, and notified nobody.
            deadline = time.monotonic() + 30
            while set(llm.requested_ids()) != set(created.values()):
                assert time.monotonic() < deadline, llm.requested_ids()
                time.sleep(0.2)
            with pytest.raises(TimeoutError):
                extra = notes.recv(timeout=5)
                print("unexpected:", extra)
        assert "AI analyzer (openai):" in worker.output
    finally:
        worker.stop()
        daphne.stop()
