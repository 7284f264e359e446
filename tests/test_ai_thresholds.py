"""Thresholds 70/85: exactly the right notifications and exactly one alert per event.

Broadcasts are captured by real channel-layer receivers subscribed on the real Redis to the
groups of `/ws/notifications`, `/ws/dashboard` and `/ws/alerts` (tests/ai_helpers.broadcasts).
"""

from __future__ import annotations

import pytest

from alerts.models import Alert, AlertSource
from events.ai import Analysis
from events.analysis import claim_batch, run_batch
from events.models import AnalysisStatus, SecurityEvent
from events.services import apply_analysis
from tests.ai_helpers import FakeLLM, broadcasts, content, verdicts

pytestmark = pytest.mark.django_db(transaction=True)

GROUPS = ["notifications", "dashboard", "alerts"]


@pytest.fixture
def llm(settings):
    fake = FakeLLM().start()
    settings.AI_PROVIDER = "openai"
    settings.AI_BASE_URL = fake.base_url
    settings.AI_MODEL = "m"
    settings.AI_NOTIFY_THRESHOLD = 70
    settings.AI_ALERT_THRESHOLD = 85
    settings.AI_RETRY_BACKOFF_SEC = 0
    yield fake
    fake.stop()


def event_on(computer: str, **fields) -> SecurityEvent:
    values = {"event_code": 4688, "severity": 3, "message": f"process on {computer}"}
    values.update(fields)
    return SecurityEvent.objects.create(computer=computer, **values)


def by_type(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


def test_scores_around_70_and_85_notify_and_alert_exactly_as_specified(llm):
    scores = {"S-70": 70, "S-71": 71, "S-85": 85, "S-86": 86, "S-100": 100, "S-10": 10}
    events = {name: event_on(name) for name in scores}
    llm.behaviour = verdicts(lambda e: scores[e["computer"]], "intrusion")

    result, received = broadcasts(GROUPS, run_batch)

    assert result.analyzed == 6
    notes = received["notifications"]
    # > 70 notifies (71, 85, 86, 100); > 85 is critical (86, 100); 70 and 10 stay quiet.
    assert sorted((n["data"]["computer"], n["severity"]) for n in notes) == [
        ("S-100", "critical"),
        ("S-71", "high"),
        ("S-85", "high"),
        ("S-86", "critical"),
    ]
    note = next(n for n in notes if n["data"]["computer"] == "S-86")
    assert note["data"] == {
        "event_id": events["S-86"].event_id,
        "computer": "S-86",
        "ai_score": 86,
        "ai_category": "intrusion",
        "ai_description": "verdict for S-86",
        "message": "process on S-86",
        "alert_id": Alert.objects.get(hostname="S-86").alert_id,
    }
    # A `high` notification raised no alert, so it names none.
    assert "alert_id" not in next(n for n in notes if n["data"]["computer"] == "S-85")["data"]
    # The dashboard gets the same notifications plus the alerts.
    assert content(by_type(received["dashboard"], "notification")) == content(notes)
    created = by_type(received["alerts"], "alert")
    assert sorted(m["data"]["hostname"] for m in created) == ["S-100", "S-86"]
    assert all(m["action"] == "created" for m in created)
    assert content(by_type(received["dashboard"], "alert")) == content(created)
    # Exactly one alert per event above 85, from the AI, linked to its event.
    alerts = Alert.objects.order_by("hostname")
    assert [(a.hostname, a.source, a.dedup_key) for a in alerts] == [
        ("S-100", AlertSource.AI, f"ai:event:{events['S-100'].event_id}"),
        ("S-86", AlertSource.AI, f"ai:event:{events['S-86'].event_id}"),
    ]
    assert list(alerts[1].events.all()) == [events["S-86"]]
    assert alerts[1].category == "intrusion" and "verdict for S-86" in alerts[1].description


def test_the_same_event_never_gets_a_second_alert(llm):
    event = event_on("DC-01")
    assert apply_analysis(event, Analysis(95, "intrusion", "first"), provider="test")

    # Analyzed again (put back to pending by hand) after its alert was resolved: a
    # notification again, but no second alert.
    Alert.objects.update(is_open=False, status="resolved")
    SecurityEvent.objects.filter(pk=event.pk).update(ai_status=AnalysisStatus.PENDING)
    _, received = broadcasts(
        GROUPS, lambda: apply_analysis(event, Analysis(97, "intrusion", "again"), provider="t")
    )

    assert Alert.objects.count() == 1
    assert [n["severity"] for n in received["notifications"]] == ["critical"]
    assert "alert_id" not in received["notifications"][0]["data"]
    assert received["alerts"] == []


def test_a_worker_whose_claim_was_taken_back_stores_nothing_and_sends_nothing(llm):
    event = event_on("WS-9")
    stale_claim, _ = claim_batch(10)
    # The claim expired and another worker claimed and analyzed the event meanwhile.
    SecurityEvent.objects.filter(pk=event.pk).update(ai_status=AnalysisStatus.PENDING)
    fresh_claim, _ = claim_batch(10)
    assert apply_analysis(
        event, Analysis(90, "intrusion", "winner"), provider="b", claimed_at=fresh_claim
    )

    stored, received = broadcasts(
        GROUPS,
        lambda: apply_analysis(
            event, Analysis(99, "intrusion", "late"), provider="a", claimed_at=stale_claim
        ),
    )

    assert stored is False
    assert received == {"notifications": [], "dashboard": [], "alerts": []}
    event.refresh_from_db()
    assert (event.ai_score, event.ai_description, event.ai_provider) == (90, "winner", "b")
    assert Alert.objects.count() == 1


def test_a_run_finds_nothing_while_another_run_holds_the_claims(llm):
    for index in range(6):
        event_on(f"H-{index}", severity=4)
    llm.behaviour = verdicts(lambda e: 99)

    # Worker A claims first; worker B, running meanwhile, finds nothing left to claim (the
    # real multi-process race is in test_ai_claims.py).
    _claimed_at, claimed = claim_batch(10)
    result_b, received_b = broadcasts(GROUPS, run_batch)
    assert result_b.claimed == 0 and received_b["alerts"] == []
    assert len(claimed) == 6 and llm.requests == []


def test_thresholds_follow_the_settings(settings, llm):
    settings.AI_NOTIFY_THRESHOLD = 40
    settings.AI_ALERT_THRESHOLD = 60
    event_on("LOW-50")
    llm.behaviour = verdicts(lambda e: 50)

    _, received = broadcasts(GROUPS, run_batch)

    assert [n["severity"] for n in received["notifications"]] == ["high"]
    assert received["alerts"] == [] and Alert.objects.count() == 0


@pytest.mark.django_db
def test_the_analyzer_claims_alert_linked_and_severe_events_before_older_noise():
    """Issue 15: not FIFO. Linked to an alert first, then severity, then oldest."""
    from alerts.services import create_alert
    from events.models import SecurityEvent
    from siem.choices import Severity

    def event(severity: int) -> SecurityEvent:
        return SecurityEvent.objects.create(
            computer="PC-01", event_code=4624, severity=severity, message="m"
        )

    noise = [event(1) for _ in range(3)]
    severe = event(4)
    on_alert = event(2)
    create_alert(
        title="Linked",
        severity=Severity.HIGH,
        category="test",
        hostname="PC-01",
        events=[on_alert],
        source="rule",
        dedup_key="k",
    )
    _claimed_at, claimed = claim_batch(3)
    assert {e.pk for e in claimed} == {on_alert.pk, severe.pk, noise[0].pk}
    _claimed_at, claimed = claim_batch(1)
    assert [e.pk for e in claimed] == [noise[1].pk]
