"""Two deliveries of the same batch at the same moment store it once (PostgreSQL only).

An agent whose first attempt timed out client-side retries while the server is still working
on the first one: both requests race on the (agent, record id) unique index. SQLite serializes
writers, so the race only exists (and is only tested) on PostgreSQL:
`SIEM_TEST_DB_NAME=test_<you> DATABASE_URL=postgres://postgres@127.0.0.1:5432/test pytest ...`
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from agents import services
from events.models import SecurityEvent
from tests.test_agents_helpers import agent_client, jsonl_records

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the race needs concurrent writers (PostgreSQL)"
)


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_delivered_twice_at_once_is_stored_once():
    _agent, token = services.register_agent(hostname="DC-RACE")
    batch = jsonl_records("attacks/eas_credaccess_latmove_security.jsonl", limit=300)
    batch = list({r["EventRecordID"]: r for r in batch}.values())  # one host's ids are unique
    start = threading.Barrier(3)
    answers: list = []

    def deliver():
        client = agent_client(token)
        start.wait()
        try:
            answers.append(client.post("/api/v1/agents/events/", batch, format="json"))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(a.status_code for a in answers) in ([200, 200, 201], [200, 201, 201], [201] * 3)
    bodies = [a.json() for a in answers]
    assert sum(b["created"] for b in bodies) == len(batch)
    assert sum(b["duplicates"] for b in bodies) == 2 * len(batch)
    assert SecurityEvent.objects.count() == len(batch)
