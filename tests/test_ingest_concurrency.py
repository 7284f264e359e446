"""INGEST_MAX_CONCURRENCY: a server process stores at most that many batches at once; a batch
that finds no free slot within INGEST_QUEUE_TIMEOUT_SEC gets 503 + Retry-After, nothing stored."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from agents.services import register_agent
from events.models import SecurityEvent
from siem.concurrency import ingest_slot
from tests.api_helpers import bearer_client
from tests.test_agents_helpers import agent_client


def events(count: int, host: str = "WS-001") -> list[dict]:
    return [
        {
            "computer": host,
            "event_code": 4625,
            "severity": 3,
            "source_type": "Windows Security",
            "message": f"failed logon {i}",
        }
        for i in range(count)
    ]


def agent_records(count: int, first_id: int = 1) -> list[dict]:
    return [
        {"EventID": 4624, "EventRecordID": first_id + i, "TimeCreated": "2026-11-20T12:00:00Z"}
        for i in range(count)
    ]


@pytest.mark.django_db
def test_a_batch_with_no_free_slot_gets_503_with_retry_after_and_nothing_is_stored(
    api_setup, analyst, settings
):
    settings.INGEST_MAX_CONCURRENCY = 1
    settings.INGEST_QUEUE_TIMEOUT_SEC = 0
    _agent, token = register_agent(hostname="WS-AGENT")
    calls = {
        "bulk": lambda: bearer_client(analyst).post(
            "/api/v1/events/bulk/", events(3), format="json"
        ),
        "agent": lambda: agent_client(token).post(
            "/api/v1/agents/events/", agent_records(3), format="json"
        ),
    }
    with ingest_slot():  # another request of this process is storing its batch
        for name, call in calls.items():
            response = call()
            assert response.status_code == 503, name
            assert response["Retry-After"] == "1"
            assert "busy" in response.json()["detail"]
    assert not SecurityEvent.objects.exists()
    # The slot is free again: the same requests are stored.
    assert [call().status_code for call in calls.values()] == [201, 201]
    assert SecurityEvent.objects.count() == 6


@pytest.mark.django_db
def test_no_limit_when_the_setting_is_zero(api_setup, analyst, settings):
    settings.INGEST_MAX_CONCURRENCY = 0
    settings.INGEST_QUEUE_TIMEOUT_SEC = 0
    with ingest_slot(), ingest_slot(), ingest_slot():
        response = bearer_client(analyst).post("/api/v1/events/bulk/", events(2), format="json")
    assert response.status_code == 201, response.json()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_are_stored_at_most_the_limit_at_a_time(api_setup, analyst, settings):
    """Six uploads at once through the real views and services: all stored, never more than two
    inside create_events together (a spy counts; the real function does the work)."""
    import events.api.views as views

    settings.INGEST_MAX_CONCURRENCY = 2
    settings.INGEST_QUEUE_TIMEOUT_SEC = 60
    real = views.create_events
    inside, most, lock = 0, 0, threading.Lock()

    def counting(*args, **kwargs):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            time.sleep(0.2)  # long enough for every request to be waiting on the slots
            return real(*args, **kwargs)
        finally:
            with lock:
                inside -= 1

    views.create_events = counting
    start = threading.Barrier(6)
    codes: list[int] = []

    def upload(n: int) -> None:
        client = bearer_client(analyst)
        start.wait()
        try:
            response = client.post(
                "/api/v1/events/bulk/", events(50, host=f"WS-{n}"), format="json"
            )
            codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        views.create_events = real
    assert codes == [201] * 6
    assert most == 2
    assert SecurityEvent.objects.count() == 300
