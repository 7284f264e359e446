"""Detection: built-in correlation rules and Sigma rules over every stored event.

Entry point: `detect_events(events)`, called by `events.services.after_events_stored` once an
ingestion batch is committed. See engine.py for the pipeline and docs/detection.md for the rules.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings

logger = logging.getLogger(__name__)

# Micro-batch size: one Redis pipeline and one set of alert writes per chunk.
CHUNK = 500


def detect_events(events: list) -> Counter:
    """Run detection over stored events; never raises into ingestion (the events are stored)."""
    fired: Counter = Counter()
    if not settings.DETECTION_ENABLED or not events:
        return fired
    from alerts.detection.engine import get_engine

    try:
        engine = get_engine()
        for start in range(0, len(events), CHUNK):
            fired.update(engine.process(events[start : start + CHUNK]))
    except Exception:
        logger.exception("detection failed for a batch of %d event(s)", len(events))
    _observe_latency(events)
    return fired


def _observe_latency(events: list) -> None:
    """From the batch's arrival (`received_at`, one per batch) to the end of its detection."""
    from django.utils import timezone

    from siem.metrics import DETECTION_LATENCY

    received_at = getattr(events[0], "received_at", None)
    if received_at is not None:
        DETECTION_LATENCY.observe(max(0.0, (timezone.now() - received_at).total_seconds()))
