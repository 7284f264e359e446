"""One alert when a built-in and a Sigma rule detect the same thing on the same events.

Replays the real EVTX-ATTACK-SAMPLES (7,448 records) through ingestion with the complete SigmaHQ
Windows ruleset twice: once with every rule raising its own alerts (as before), once with the
Sigma findings folded into the built-in alerts they duplicate. Alerts drop; no rule loses a
single event it matched (each rule's events are on its own alerts, or listed on the built-in
alert it joined). Matching itself is untouched (tests/test_detection_fullset.py).

The rules are loaded once for the module (~20 s of CPU; minutes on a loaded machine).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import pytest

from alerts.detection import engine as engine_module
from alerts.detection.engine import Engine, _rules_signature
from alerts.detection.sigma import load_rules
from alerts.models import Alert
from events.models import SecurityEvent
from events.normalize import normalize_record
from events.services import create_events
from tests.detection_helpers import DATA, forget_windows, fresh_detection

pytestmark = pytest.mark.timeout(3600)

FULL = DATA / "sigma-full" / "rules" / "windows"
SAMPLES = sorted((DATA / "windows" / "attack-samples").glob("*.jsonl"))


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(FULL)


def install(engine: Engine) -> None:
    """Make `engine` the process's engine for SIGMA_RULES_DIR=FULL (rules compiled once)."""
    engine_module._engine = engine
    engine_module._engine_dir = str(FULL)
    engine_module._engine_source = _rules_signature(str(FULL))
    engine_module._engine_checked = time.monotonic()


def replay(items, capture) -> dict[str, list[dict]]:
    """Ingest the records; per rule id, its alerts as {events (record indexes), also}."""
    with capture(execute=True):
        for start in range(0, len(items), 500):
            create_events(items[start : start + 500])
    index = {
        pk: i
        for i, pk in enumerate(SecurityEvent.objects.order_by("pk").values_list("pk", flat=True))
    }
    assert len(index) == len(items)
    alerts: dict[str, list[dict]] = defaultdict(list)
    for alert in Alert.objects.prefetch_related("events"):
        alerts[alert.rule_id].append(
            {
                "events": {index[event.pk] for event in alert.events.all()},
                "also": [
                    (entry["id"], {index[pk] for pk in entry["event_ids"]})
                    for entry in alert.also_matched
                ],
            }
        )
    return alerts


def matched(alerts: dict[str, list[dict]]) -> dict[str, set[int]]:
    """Every event each rule detected: on its own alerts and on those it was folded into."""
    found: dict[str, set[int]] = defaultdict(set)
    for rule_id, raised in alerts.items():
        for alert in raised:
            found[rule_id] |= alert["events"]
            for other, events in alert["also"]:
                found[other] |= events
    return found


@pytest.mark.django_db(transaction=False)
def test_attack_samples_raise_fewer_alerts_and_no_detection_is_lost(
    settings, ruleset, django_capture_on_commit_callbacks
):
    records = [json.loads(line) for path in SAMPLES for line in path.open() if line.strip()]
    items = [normalize_record(record) for record in records]
    with fresh_detection(settings, sigma_dir=str(FULL), config_ttl=None):
        install(Engine(ruleset, fold=False))
        before = replay(items, django_capture_on_commit_callbacks)
        Alert.objects.all().delete()
        SecurityEvent.objects.all().delete()
        forget_windows()
        install(Engine(ruleset))
        after = replay(items, django_capture_on_commit_callbacks)

    count = lambda alerts: sum(len(raised) for raised in alerts.values())  # noqa: E731
    print(f"attack-samples: {count(before)} alerts before, {count(after)} after")
    assert count(after) < count(before)
    # No detection lost: every rule still holds every event it matched.
    assert matched(after) == matched(before)
    # Built-in alerts are untouched, Sigma alerts only disappear (never appear).
    builtin = {rule for rule in before if not rule.startswith("sigma:")}
    for rule in builtin:
        assert sorted(sorted(a["events"]) for a in after[rule]) == sorted(
            sorted(a["events"]) for a in before[rule]
        )
    for rule, raised in after.items():
        assert len(raised) <= len(before[rule])
    # A Sigma rule is folded only onto a built-in alert's own events.
    for rule in builtin:
        for alert in after[rule]:
            for other, events in alert["also"]:
                assert other.startswith("sigma:") and events and events <= alert["events"]
    # The example: the audit log cleared, 1102/104, raised a built-in and a Sigma alert
    # each; now the built-in alerts carry the Sigma rule.
    cleared = after["builtin.audit_log_cleared"]
    assert cleared and all(a["also"] for a in cleared)
    sigma_on_cleared = {o for a in cleared for o, _ in a["also"]}
    assert not sigma_on_cleared & set(after), sigma_on_cleared & set(after)
