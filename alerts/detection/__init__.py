"""Detection: built-in correlation rules and Sigma rules over every stored event.

Entry points: `detection_step`, registered in `AlertsConfig.ready` as the events pipeline's
transactional step `alerts.detection` (run once an ingestion batch is committed, again by the
relay if the process died first: `events.pipeline`), and `detect_events(events)` for direct use.
See engine.py for the engine and docs/detection.md for the rules.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.conf import settings

logger = logging.getLogger(__name__)

# Micro-batch size: one Redis pipeline and one set of alert writes per chunk.
CHUNK = 500


def detect_events(events: list, *, batch_key: str | None = None, strict: bool = False) -> Counter:
    """Run detection over stored events.

    Without `strict`, never raises (a failure is logged) and a Redis outage skips the window
    updates. With `strict` (the pipeline step), any failure — Redis unreachable included —
    raises, so that the caller's transaction rolls back and the batch is retried whole.
    `batch_key` makes the Redis window updates of a retried batch replay their first answer
    instead of counting the events again (`WindowStore.update`).
    """
    fired: Counter = Counter()
    if not settings.DETECTION_ENABLED or not events:
        return fired
    from alerts.detection.engine import get_engine

    try:
        engine = get_engine()
        for number, start in enumerate(range(0, len(events), CHUNK)):
            chunk_key = f"{batch_key}:{number}" if batch_key else None
            fired.update(
                engine.process(events[start : start + CHUNK], batch_key=chunk_key, strict=strict)
            )
    except Exception:
        if strict:
            raise
        logger.exception("detection failed for a batch of %d event(s)", len(events))
    _observe_latency(events)
    return fired


def detection_step(events: list, context) -> None:
    """The events pipeline's step `alerts.detection` (run inside the transaction that completes
    its outbox row: the alerts it raises and counts commit exactly once)."""
    detect_events(events, batch_key=context.key, strict=True)


def _observe_latency(events: list) -> None:
    """From the batch's arrival (`received_at`, one per batch) to the end of its detection."""
    from django.utils import timezone

    from siem.metrics import DETECTION_LATENCY

    received_at = getattr(events[0], "received_at", None)
    if received_at is not None:
        DETECTION_LATENCY.observe(max(0.0, (timezone.now() - received_at).total_seconds()))
