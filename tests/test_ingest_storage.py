"""The insert under create_events stores every value exactly, on every database.

On PostgreSQL the batch goes in by COPY with keys drawn from the sequence; elsewhere by
bulk_create or row by row. Both must store the same thing, hand back the stored keys and turn
a constraint violation into Django's IntegrityError with nothing half-written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, transaction

from agents import services as agent_services
from events import services
from events.models import SecurityEvent

AWKWARD = [
    "tab\there, newline\nthere, carriage\rreturn",
    "back\\slash and \\N and \\. and a lone \\",
    "quotes \"double\" and 'single', commas, {braces} and [brackets]",
    "Ünïcödé — 日本語 — emoji 🛡️",
    "",
]


def item(n: int, text: str) -> dict:
    return {
        "timestamp": datetime(2026, 11, 20, 12, 0, n, 123456, tzinfo=timezone(timedelta(hours=3))),
        "computer": f"WS-{n:03d}",
        "event_code": 4625,
        "severity": 3,
        "message": text,
        "source_type": "Windows Security",
        "user_name": text[:50],
        "source_ip": "10.0.0.5",
        "raw": {"Message": text, "EventData": {"Nested": [1, 2.5, None, True, text]}, "\\k": ""},
        "agent_record_id": 1000 + n,
    }


@pytest.mark.django_db
def test_every_value_is_stored_exactly_and_the_keys_are_the_stored_ones():
    items = [item(n, text) for n, text in enumerate(AWKWARD)]
    created = services.create_events(items).created
    assert len(created) == len(items)
    assert all(not event._state.adding for event in created)
    for event, sent in zip(created, items, strict=True):
        stored = SecurityEvent.objects.get(pk=event.pk)
        for name, value in sent.items():
            assert getattr(stored, name) == value, name
        assert stored.timestamp.utcoffset() == timedelta(0)  # read back in UTC, same instant
        assert stored.received_at == event.received_at
        assert stored.ai_status == "pending" and stored.ai_score is None
    # The sequence moved past the batch: the next insert by the ORM gets a fresh key.
    later = SecurityEvent.objects.create(computer="WS-9", event_code=1, severity=1)
    assert later.pk > max(event.pk for event in created)


@pytest.mark.django_db
def test_none_stays_null_and_missing_fields_take_their_defaults():
    (event,) = services.create_events(
        [{"computer": "WS-1", "event_code": 4624, "severity": 1, "agent_record_id": None}]
    ).created
    stored = SecurityEvent.objects.get(pk=event.pk)
    assert stored.agent_record_id is None and stored.agent_id is None
    assert stored.raw == {} and stored.message == "" and stored.source_type == "Windows Security"
    assert abs(stored.timestamp - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.django_db(transaction=True)
def test_a_constraint_violation_is_an_integrity_error_and_stores_nothing():
    agent, _token = agent_services.register_agent(hostname="WS-DUP")
    rows = [
        services._build(item(n, "x"), agent=agent, received_at=datetime.now(UTC)) for n in (1, 2)
    ]
    rows[1].severity = 9  # the check constraint (on PostgreSQL the unique (agent, record id)
    # index is gone with partitioning: events/services.py de-duplicates under a lock there)
    with pytest.raises(IntegrityError):
        services._store(rows)
    assert not SecurityEvent.objects.exists()
    # The connection is usable afterwards: the failed transaction was rolled back cleanly.
    with transaction.atomic():
        services._store(rows[:1])
    assert SecurityEvent.objects.count() == 1
