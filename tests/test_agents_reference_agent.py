"""agent/siem_agent.py, the reference agent, against the real server contract.

The agent runs as a subprocess and talks HTTP to our real Django application, served from a
thread of this test on a loopback port (one request at a time, on the test database). A small
WSGI wrapper plays the unreliable network: it can lose the answer of a request that the server
did process, which is when the record-id idempotency matters.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import xml.sax.saxutils as saxutils
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connection

from agents import services
from agents.models import Agent
from events.models import SecurityEvent
from tests.test_agents_helpers import WINDOWS_DATA, jsonl_records

ROOT = Path(__file__).resolve().parents[1]
AGENT = ROOT / "agent" / "siem_agent.py"
SPRAY = WINDOWS_DATA / "attacks" / "eas_kerberos_password_spray_4771.jsonl"
KEY = "reference-agent-key-123"
sys.path.insert(0, str(ROOT / "agent"))
import siem_agent  # noqa: E402  (the script is not a package)


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


class LossyNetwork:
    """Our app; the answers of the next `lose` agent-event requests never reach the agent."""

    def __init__(self, app):
        self.app = app
        self.lose = 0
        self.lost = 0

    def __call__(self, environ, start_response):
        try:
            if environ["PATH_INFO"].startswith("/api/v1/agents/events") and self.lose:
                self.lose -= 1
                self.lost += 1
                body = b"".join(self.app(environ, lambda *a, **k: None))  # processed...
                del body
                start_response("502 Bad Gateway", [("Content-Type", "text/plain")])
                return [b"upstream connection reset"]  # ...but the answer is lost
            return self.app(environ, start_response)
        finally:
            connection.close()


def free_port() -> int:
    for port in range(8420, 8499):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8420-8498")


@pytest.fixture
def server(settings, transactional_db):
    settings.AGENT_ENROLLMENT_KEY = KEY
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    network = LossyNetwork(get_wsgi_application())
    httpd = make_server("127.0.0.1", free_port(), network, WSGIServer, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    network.url = f"http://127.0.0.1:{httpd.server_port}"
    yield network
    httpd.shutdown()
    httpd.server_close()


def run_agent(server, state: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(AGENT), "--url", server.url, "--state", str(state), "--once",
         "--hostname", "DC-REF", "--max-attempts", "3", "-v", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_agent_enrolls_ships_a_real_log_and_keeps_its_bookmark(server, tmp_path):
    state = tmp_path / "state.json"
    first = run_agent(
        server, state, "--enrollment-key", KEY, "--from-jsonl", str(SPRAY), "--batch-size", "5"
    )
    assert first.returncode == 0, first.stderr
    records = jsonl_records("attacks/eas_kerberos_password_spray_4771.jsonl")
    agent = Agent.objects.get(hostname="DC-REF")
    stored = SecurityEvent.objects.filter(agent=agent)
    assert stored.count() == len(records) == 12
    assert {e.agent_record_id for e in stored} == {r["EventRecordID"] for r in records}
    saved = json.loads(state.read_text())
    assert saved["agent_id"] == str(agent.agent_id) and saved["jsonl_bookmark"]["line"] == 12
    assert KEY not in state.read_text()  # the enrollment key is never stored
    assert saved["agent_token"] not in first.stderr  # nor the token logged
    again = run_agent(server, state, "--from-jsonl", str(SPRAY))
    assert again.returncode == 0 and "done: 0 new record(s) stored" in again.stderr
    assert SecurityEvent.objects.count() == 12


def test_a_batch_whose_answer_was_lost_is_retried_and_stored_once(server, tmp_path):
    server.lose = 1
    result = run_agent(
        server, tmp_path / "s.json", "--enrollment-key", KEY, "--from-jsonl", str(SPRAY)
    )
    assert result.returncode == 0, result.stderr
    assert server.lost == 1 and "retrying" in result.stderr
    assert "0 stored, 12 already there" in result.stderr
    assert SecurityEvent.objects.count() == 12


def test_a_lost_bookmark_reships_without_duplicates(server, tmp_path):
    state = tmp_path / "state.json"
    run_agent(server, state, "--enrollment-key", KEY, "--from-jsonl", str(SPRAY))
    saved = json.loads(state.read_text())
    del saved["jsonl_bookmark"]
    state.write_text(json.dumps(saved))
    result = run_agent(server, state, "--from-jsonl", str(SPRAY))
    assert result.returncode == 0 and "0 stored, 12 already there" in result.stderr
    assert SecurityEvent.objects.count() == 12


def test_a_revoked_agent_stops_with_a_clear_message(server, tmp_path):
    state = tmp_path / "state.json"
    run_agent(server, state, "--enrollment-key", KEY, "--from-jsonl", str(SPRAY))
    services.revoke_agent_token(Agent.objects.get(hostname="DC-REF"))
    result = run_agent(server, state, "--from-jsonl", str(SPRAY))
    assert result.returncode == 3
    assert "refuses this agent's token (Agent token revoked)" in result.stderr


def test_a_wrong_enrollment_key_stops_the_agent(server, tmp_path):
    result = run_agent(server, tmp_path / "s.json", "--enrollment-key", "wrong", "--from-jsonl",
                       str(SPRAY))  # fmt: skip
    assert result.returncode != 0 and "Invalid enrollment key" in result.stderr
    assert not Agent.objects.exists()


def as_wevtutil_xml(record: dict) -> str:
    """A flat record as wevtutil qe /f:xml prints the event."""
    system = {k: v for k, v in record.items() if k in SYSTEM_KEYS}
    data = "".join(
        f'<Data Name="{k}">{saxutils.escape(str(v))}</Data>'
        for k, v in record.items()
        if k not in SYSTEM_KEYS and k != "_source_file"
    )
    return (
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
        f"<Provider Name='{system['Provider_Name']}' Guid='{system['Provider_Guid']}'/>"
        f"<EventID>{system['EventID']}</EventID><Version>{system['Version']}</Version>"
        f"<Level>{system['Level']}</Level><Task>{system['Task']}</Task>"
        f"<Opcode>{system['Opcode']}</Opcode><Keywords>{system['Keywords']}</Keywords>"
        f"<TimeCreated SystemTime='{system['TimeCreated']}'/>"
        f"<EventRecordID>{system['EventRecordID']}</EventRecordID><Correlation/>"
        f"<Execution ProcessID='{system['ExecutionProcessID']}' "
        f"ThreadID='{system['ExecutionThreadID']}'/><Channel>{system['Channel']}</Channel>"
        f"<Computer>{system['Computer']}</Computer><Security/></System>"
        f"<EventData>{data}</EventData></Event>"
    )


SYSTEM_KEYS = {
    "EventID", "Computer", "Channel", "Provider_Name", "Provider_Guid", "TimeCreated",
    "EventRecordID", "Level", "Task", "Opcode", "Keywords", "Version", "ExecutionProcessID",
    "ExecutionThreadID",
}  # fmt: skip


def test_wevtutil_xml_is_flattened_like_the_flat_export():
    records = jsonl_records("attacks/eas_credaccess_latmove_security.jsonl", limit=40)
    text = "\r\n".join(as_wevtutil_xml(r) for r in records)  # no common root, as wevtutil
    parsed = siem_agent.parse_events_xml(text)
    assert len(parsed) == len(records)
    for record, flat in zip(records, parsed, strict=True):
        expected = {k: v for k, v in record.items() if k != "_source_file"}
        # XML carries text: EventData numbers arrive as strings (System numbers are converted
        # back), and an XML parser reads every CR LF as LF.
        assert flat == {k: v if k in SYSTEM_KEYS else as_xml_text(v) for k, v in expected.items()}


def as_xml_text(value) -> str:
    return "" if value is None else str(value).replace("\r\n", "\n")
