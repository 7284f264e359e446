"""The AI analyzer's queue: claim events, ask the provider, store verdicts or count failures.

State lives in the database only (`ai_status`, `ai_attempts`, `ai_claimed_at`, `ai_error`), so
any number of Celery workers — or the `analyze_events` command next to them — can run at once,
and a worker that dies or a provider that is down never loses an event:

- pending    → processing  claimed by one worker (conditional UPDATE; its row count says who won)
- processing → done        verdict stored (services.apply_analysis)
- processing → pending     attempt failed; retried after AI_RETRY_BACKOFF_SEC·2^(attempts-1)
- processing → failed      AI_RETRY_ATTEMPTS attempts failed; reason in ai_error; re-runnable
- processing → pending     claim older than AI_CLAIM_TIMEOUT_SEC (the worker died): an attempt
- failed     → pending     the provider answers again: events that failed only because it was
                           down are put back automatically (run_batch, steps 3 and 5)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from events.ai import Provider, ProviderError, get_provider
from events.models import AnalysisStatus, SecurityEvent
from events.services import (
    AI_OUTAGE_PREFIX,
    apply_analysis,
    record_analysis_failure,
    requeue_failed_analyses,
)

logger = logging.getLogger("events.analysis")


@dataclass
class BatchResult:
    claimed: int = 0
    analyzed: int = 0
    requeued: int = 0
    failed: int = 0
    reclaimed: int = 0
    revived: int = 0
    error: str = ""
    event_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "claimed": self.claimed,
            "analyzed": self.analyzed,
            "requeued": self.requeued,
            "failed": self.failed,
            "reclaimed": self.reclaimed,
            "revived": self.revived,
            "error": self.error,
        }


def retry_delay(attempts: int) -> timedelta:
    """How long an event waits after its `attempts`-th failed attempt."""
    base = settings.AI_RETRY_BACKOFF_SEC
    return timedelta(seconds=base * 2 ** max(attempts - 1, 0))


def _eligible(now: datetime, ignore_backoff: bool) -> Q:
    pending = Q(ai_status=AnalysisStatus.PENDING)
    if ignore_backoff or settings.AI_RETRY_BACKOFF_SEC == 0:
        return pending
    # One term per attempt count keeps the query portable (no date arithmetic in SQL).
    ready = Q(ai_attempts=0) | Q(ai_claimed_at__isnull=True)
    limit = max(settings.AI_RETRY_ATTEMPTS, 1)
    for attempts in range(1, limit):
        ready |= Q(ai_attempts=attempts, ai_claimed_at__lte=now - retry_delay(attempts))
    ready |= Q(ai_attempts__gte=limit, ai_claimed_at__lte=now - retry_delay(limit))
    return pending & ready


def reclaim_stale(now: datetime | None = None) -> int:
    """Take back claims whose worker never finished; counts as a failed attempt."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.AI_CLAIM_TIMEOUT_SEC)
    stale = list(
        SecurityEvent.objects.filter(
            ai_status=AnalysisStatus.PROCESSING, ai_claimed_at__lt=cutoff
        ).values_list("pk", "ai_claimed_at")
    )
    reason = (
        f"analysis did not finish within {settings.AI_CLAIM_TIMEOUT_SEC} s "
        "(AI_CLAIM_TIMEOUT_SEC); the worker probably stopped"
    )
    total = 0
    for pk, claimed_at in stale:
        requeued, failed = record_analysis_failure(
            [pk],
            reason,
            claimed_at=claimed_at,
            max_attempts=settings.AI_RETRY_ATTEMPTS,
            now=now,
        )
        total += requeued + failed
    if total:
        logger.warning("Reclaimed %d AI analysis claim(s) left by a stopped worker", total)
    return total


def claim_batch(
    limit: int, *, now: datetime | None = None, ignore_backoff: bool = False
) -> tuple[datetime, list[SecurityEvent]]:
    """Claim up to `limit` pending events; returns (claim time, events).

    Fewest attempts first: during an outage every event gets its first attempt before any gets
    its second, so no event starves behind retries. Then what matters first (issue 15): events
    linked to an alert, then higher severity, then oldest — a burst of office noise no longer
    holds back the Sysmon 10 on LSASS that arrived after it.

    Each candidate is claimed by its own conditional UPDATE (`WHERE ai_status='pending'`): on
    SQLite, PostgreSQL and SQL Server alike exactly one concurrent claimer gets row count 1.
    The claim time doubles as the claim's token: results are stored only under it.
    """
    from alerts.models import Alert

    now = now or timezone.now()
    # Ask for more candidates than needed: another worker may win some of them.
    candidates = list(
        SecurityEvent.objects.filter(_eligible(now, ignore_backoff))
        .annotate(
            on_alert=Exists(Alert.events.through.objects.filter(securityevent_id=OuterRef("pk")))
        )
        .order_by("ai_attempts", "-on_alert", "-severity", "event_id")
        .values_list("pk", flat=True)[: limit * 2]
    )
    return now, _claim(candidates, AnalysisStatus.PENDING, limit, now)


def _claim(candidates: list[int], status: str, limit: int, now: datetime) -> list[SecurityEvent]:
    won: list[int] = []
    for pk in candidates:
        if len(won) >= limit:
            break
        if SecurityEvent.objects.filter(pk=pk, ai_status=status).update(
            ai_status=AnalysisStatus.PROCESSING, ai_claimed_at=now
        ):
            won.append(pk)
    return list(SecurityEvent.objects.filter(pk__in=won).order_by("event_id"))


def outage_probe_delay() -> timedelta:
    """How long after their last attempt outage-failed events are tried again (as a probe)."""
    return max(
        retry_delay(settings.AI_RETRY_ATTEMPTS),
        timedelta(seconds=settings.AI_PROCESS_INTERVAL_SEC),
    )


def claim_outage_probe(
    limit: int, *, now: datetime | None = None, ignore_backoff: bool = False
) -> tuple[datetime, list[SecurityEvent]]:
    """Claim up to `limit` events that failed because the provider was down, to test it.

    Only used when nothing is pending. Their attempts are not reset: a probe that fails again
    sends them straight back to `failed`, one request per probe.
    """
    now = now or timezone.now()
    rows = SecurityEvent.objects.filter(
        ai_status=AnalysisStatus.FAILED, ai_error__startswith=AI_OUTAGE_PREFIX
    )
    if not ignore_backoff:
        rows = rows.filter(ai_claimed_at__lte=now - outage_probe_delay())
    candidates = list(rows.order_by("event_id").values_list("pk", flat=True)[: limit * 2])
    return now, _claim(candidates, AnalysisStatus.FAILED, limit, now)


def run_batch(
    provider: Provider | None = None,
    *,
    limit: int | None = None,
    ignore_backoff: bool = False,
    now: datetime | None = None,
) -> BatchResult:
    """One analyzer run.

    1. Return claims of dead workers to the queue (reclaim_stale).
    2. Claim up to `limit` pending events whose retry backoff has passed.
    3. Nothing pending: claim, as a probe, events that failed only because the provider was
       down, once `outage_probe_delay()` has passed since their last attempt.
    4. One provider request for the batch; store each verdict under this run's claim. A
       provider error (down, timeout, HTTP error, no JSON, misconfigured) fails the attempt of
       every claimed event, marked AI_OUTAGE_PREFIX; an event missing from an otherwise good
       answer fails alone.
    5. The provider answered: every event failed by an outage goes back to `pending` with fresh
       attempts, so an outage of any length ends with every event analyzed, unattended.

    Nothing here raises for a provider problem: the worker keeps running, events keep state.
    """
    result = BatchResult()
    result.reclaimed = reclaim_stale(now)
    limit = limit or settings.AI_BATCH_SIZE
    claimed_at, events = claim_batch(limit, now=now, ignore_backoff=ignore_backoff)
    if not events:
        claimed_at, events = claim_outage_probe(limit, now=now, ignore_backoff=ignore_backoff)
    result.claimed = len(events)
    result.event_ids = [event.event_id for event in events]
    if not events:
        return result
    max_attempts = settings.AI_RETRY_ATTEMPTS
    try:
        provider = provider or get_provider()
        verdicts = provider.analyze(events)
    except ProviderError as exc:
        verdicts, result.error = {}, str(exc)
    except Exception as exc:  # a provider bug must not kill the worker or strand the claim
        logger.exception("AI provider crashed on a batch of %d event(s)", len(events))
        verdicts, result.error = {}, f"internal error in the AI provider: {type(exc).__name__}"
    if result.error:
        logger.warning("AI analysis of %d event(s) failed: %s", len(events), result.error)
    name = getattr(provider, "name", settings.AI_PROVIDER)
    missing: list[int] = []
    for event in events:
        verdict = verdicts.get(event.event_id)
        if verdict is None:
            missing.append(event.event_id)
            continue
        try:
            if apply_analysis(event, verdict, provider=name, claimed_at=claimed_at):
                result.analyzed += 1
        except Exception:
            logger.exception("Storing the AI verdict of event %s failed", event.event_id)
            missing.append(event.event_id)
    if missing:
        if result.error:
            reason = AI_OUTAGE_PREFIX + result.error
        else:
            reason = f"{name}: the answer had no usable verdict for this event"
        result.requeued, result.failed = record_analysis_failure(
            missing,
            reason,
            claimed_at=claimed_at,
            max_attempts=max_attempts,
            now=now or timezone.now(),  # the backoff runs from the failure
        )
    if result.analyzed and not result.error:
        # The provider answers: events that failed only because it was down get a new chance.
        result.revived = requeue_failed_analyses(outage_only=True)
        if result.revived:
            logger.info(
                "AI provider %s answers again: %d event(s) failed during the outage requeued",
                name,
                result.revived,
            )
    logger.info(
        "AI analyzer (%s): %d claimed, %d analyzed, %d to retry, %d failed",
        name,
        result.claimed,
        result.analyzed,
        result.requeued,
        result.failed,
    )
    return result


def pending_count(*, ignore_backoff: bool = True) -> int:
    return SecurityEvent.objects.filter(_eligible(timezone.now(), ignore_backoff)).count()
