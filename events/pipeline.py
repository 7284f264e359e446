"""The post-commit pipeline of stored events: registered steps, a transactional outbox, a relay.

Every batch of events that `events.services.create_events` stores is handed to each registered
step (broadcast to WebSocket clients, detection, and whatever an app adds) after commit. The
events app knows steps only by this registry, so it imports none of the apps that consume
events (`alerts` registers detection in its `AppConfig.ready`).

Registering a step (in your app's `AppConfig.ready`):

    from events import pipeline

    def notify(events, context):          # events: committed SecurityEvent rows, by event_id
        ...                                # raise to have the step retried later

    pipeline.register(pipeline.Step("integrations.notify", notify))

- `name` is stored in the outbox: keep it stable (a renamed step leaves old rows to nobody).
- `run(events, context)` gets the committed rows in `event_id` order; `context.key` is stable
  across retries of the same batch and step (use it to make side effects idempotent: the
  broadcast step records published chunks under it, detection its window replies).
- A step may run more than once for the same batch (a process dies after the side effect and
  before recording it, or a slow run outlives its lease): make it idempotent, or register it
  with `transactional=True`: then it runs inside the database transaction that also deletes
  its outbox row, only if this run still holds the row — its database writes commit exactly
  once (detection's alerts and counts do).
- A step that raises is retried (backoff up to PIPELINE_RETRY_MAX_SEC) until it succeeds:
  a failing Redis or provider never loses the work. Steps are independent: one failing does
  not hold back the others.

How a batch travels:
1. `enqueue(events)`, inside the transaction that inserts the events, writes one outbox row
   per registered step (`PipelineItem`: step, event ids), already leased to this process for
   PIPELINE_LEASE_SEC, and registers the fast path with `transaction.on_commit`.
2. Fast path, right after commit, in the same process: each step runs over the rows in memory
   and its outbox row is deleted (conditionally on still holding it; the rows of idempotent
   steps in the commit of the transactional step that follows them, so that a batch costs one
   commit, not one per step). A failure releases the row with a retry time instead. A
   rolled-back write leaves no row and runs nothing.
3. Relay (`drain()`: Celery beat `events.tasks.drain_pipeline` every
   PIPELINE_RELAY_INTERVAL_SEC, or `manage.py drain_pipeline`): rows whose `claimed_until` has
   passed (the process crashed, or the step failed) are claimed one by one with a conditional
   UPDATE (the row count says who won: portable to SQLite, PostgreSQL and SQL Server, no
   vendor locking), their events are read back and the step is run as in 2.
4. An agent retrying a batch whose events are all stored (`duplicates`) triggers a relay pass
   at once, so the original's unfinished work is completed as soon as its lease allows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from events.models import PipelineItem, SecurityEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepContext:
    """What a step knows about the run: `key` identifies (batch, step) across retries."""

    key: str
    item_id: int | None
    attempt: int


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[list, StepContext], object]
    transactional: bool = False


_steps: dict[str, Step] = {}


def register(step: Step) -> Step:
    """Add (or replace, by name) a post-commit step; call from `AppConfig.ready`."""
    if not step.name or len(step.name) > 64:
        raise ValueError("a pipeline step needs a name of 1-64 characters")
    _steps[step.name] = step
    return step


def unregister(name: str) -> None:
    _steps.pop(name, None)


def steps() -> list[Step]:
    """The registered steps, in registration order (broadcast before detection)."""
    return list(_steps.values())


class LeaseLost(Exception):
    """The outbox row was taken over or completed by someone else while this run worked."""


def _lease() -> timedelta:
    return timedelta(seconds=settings.PIPELINE_LEASE_SEC)


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** max(attempts - 1, 0), settings.PIPELINE_RETRY_MAX_SEC))


# --- 1. enqueue (inside the write's transaction) -------------------------------------------
def enqueue(events: list[SecurityEvent]) -> None:
    """Owe every registered step to these just-inserted events; run them after commit.

    Call inside the transaction that inserted them: the outbox rows commit or roll back with
    the events.
    """
    if not events or not _steps:
        return
    events = sorted(events, key=lambda event: event.pk)
    token = uuid.uuid4().hex
    batch_key = uuid.uuid4().hex
    ids = [event.pk for event in events]
    now = timezone.now()
    items = [
        PipelineItem(
            step=step.name,
            batch_key=batch_key,
            event_ids=ids,
            claimed_until=now + _lease(),
            claim_token=token,
        )
        for step in steps()
    ]
    items = _insert(items)
    # robust: the events are committed whatever a step does; a failure is logged and retried.
    transaction.on_commit(lambda: _run_fast_path(items, events), robust=True)


def _insert(items: list[PipelineItem]) -> list[PipelineItem]:
    from django.db import connection

    if connection.features.can_return_rows_from_bulk_insert:
        return PipelineItem.objects.bulk_create(items)
    for item in items:  # SQL Server: keys only row by row
        item.save(force_insert=True)
    return items


# --- 2. fast path -------------------------------------------------------------------------------
def _run_fast_path(items: list[PipelineItem], events: list[SecurityEvent]) -> None:
    """Run each step; the rows of finished idempotent steps are deleted in the next
    transactional step's commit (or in one statement at the end): one commit per batch in the
    usual case instead of one per step (each commit is a disk flush)."""
    settle: list[PipelineItem] = []
    for item in items:
        step = _steps.get(item.step)
        if step is None:
            continue  # unregistered since enqueue: the relay of a process that has it will do it
        _run(step, item, events, settle)
    _forget(settle)


def _run(
    step: Step,
    item: PipelineItem,
    events: list[SecurityEvent],
    settle: list[PipelineItem] | None = None,
) -> bool:
    """Run one step for one outbox row this process holds; True when it is done.

    With `settle` (the fast path), an idempotent step's row is appended to it instead of being
    deleted now, and a transactional step also deletes the rows in `settle` in its commit.
    """
    context = StepContext(
        key=f"{item.batch_key}.{item.step}", item_id=item.pk, attempt=item.attempts + 1
    )
    try:
        if step.transactional:
            with transaction.atomic():
                step.run(events, context)
                _complete(item)
                _delete_held(settle or [])
            if settle:
                settle.clear()
        else:
            step.run(events, context)
            if settle is None:
                _complete(item)
            else:
                settle.append(item)
        return True
    except LeaseLost:
        logger.info("pipeline: %s for item %s completed elsewhere", step.name, item.pk)
        return True
    except Exception as exc:  # noqa: BLE001 - any failure: keep the work, retry later
        logger.warning(
            "pipeline: step %s failed for %d event(s) (item %s, attempt %d), will retry: %r",
            step.name,
            len(events),
            item.pk,
            context.attempt,
            exc,
        )
        _release(item, exc)
        return False


def _complete(item: PipelineItem) -> None:
    done = PipelineItem.objects.filter(pk=item.pk, claim_token=item.claim_token).delete()[0]
    if not done:
        raise LeaseLost(item.pk)


def _forget(items: list[PipelineItem]) -> None:
    """Delete the rows of finished idempotent steps that this process still holds (one that
    was taken over meanwhile is left to its new holder, which will find the work done)."""
    try:
        _delete_held(items)
    except Exception:  # noqa: BLE001 - the lease runs out and the relay repeats (idempotent)
        logger.exception("pipeline: could not record %d finished item(s)", len(items))


def _delete_held(items: list[PipelineItem]) -> None:
    if not items:
        return
    held = Q()
    for item in items:
        held |= Q(pk=item.pk, claim_token=item.claim_token)
    PipelineItem.objects.filter(held).delete()


def _release(item: PipelineItem, exc: BaseException) -> None:
    attempts = item.attempts + 1
    try:
        PipelineItem.objects.filter(pk=item.pk, claim_token=item.claim_token).update(
            claim_token="",
            claimed_until=timezone.now() + _retry_delay(attempts),
            attempts=attempts,
            last_error=repr(exc)[:2000],
        )
    except Exception:  # noqa: BLE001 - the database itself is failing: the lease runs out anyway
        logger.exception("pipeline: could not release item %s", item.pk)


# --- 3. relay -----------------------------------------------------------------------------------
def drain(*, limit: int | None = None, budget_sec: float | None = None) -> int:
    """Claim and run due outbox rows (crashed or failed work); the number completed.

    Stops after `limit` rows or `budget_sec` seconds, or after three failures in a row (Redis
    still down: the rest would fail the same way; the next pass tries again).
    """
    limit = limit or settings.PIPELINE_RELAY_BATCH
    deadline = time.monotonic() + (budget_sec if budget_sec is not None else 30.0)
    completed = failures = 0
    seen: set[int] = set()
    while completed < limit and time.monotonic() < deadline and failures < 3:
        due = list(
            PipelineItem.objects.filter(claimed_until__lte=timezone.now())
            .exclude(pk__in=seen)
            .order_by("claimed_until", "id")
            .values_list("pk", flat=True)[:50]
        )
        if not due:
            break
        for pk in due:
            seen.add(pk)
            item = _claim(pk)
            if item is None:
                continue  # another relay won it, or it was completed meanwhile
            step = _steps.get(item.step)
            if step is None:
                logger.error("pipeline: no step %r registered here (item %s)", item.step, pk)
                _release(item, LookupError(f"step {item.step!r} not registered"))
                continue
            if _run(step, item, _load(item.event_ids)):
                completed += 1
                failures = 0
            else:
                failures += 1
            if completed >= limit or time.monotonic() >= deadline or failures >= 3:
                break
    if completed:
        logger.info("pipeline relay: %d outbox item(s) completed", completed)
    return completed


def _claim(pk: int) -> PipelineItem | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    won = PipelineItem.objects.filter(pk=pk, claimed_until__lte=now).update(
        claim_token=token, claimed_until=now + _lease()
    )
    if not won:
        return None
    return PipelineItem.objects.filter(pk=pk, claim_token=token).first()


def _load(ids: Iterable[int]) -> list[SecurityEvent]:
    """The batch's events by key, in chunks (SQL Server takes at most 2,100 parameters).
    Events purged since (retention) are simply absent."""
    ids = list(ids)
    events: list[SecurityEvent] = []
    for start in range(0, len(ids), 1000):
        events.extend(SecurityEvent.objects.filter(pk__in=ids[start : start + 1000]))
    events.sort(key=lambda event: event.pk)
    return events


def pending_count() -> int:
    """Outbox rows still owed (metrics, tests)."""
    return PipelineItem.objects.count()


def run_now(events: list[SecurityEvent], *, only: Iterable[str] | None = None) -> None:
    """Run registered steps over events without the outbox (benchmarks of the stages)."""
    wanted = set(only) if only is not None else None
    for step in steps():
        if wanted is None or step.name in wanted:
            step.run(events, StepContext(key=f"now-{uuid.uuid4().hex}", item_id=None, attempt=1))
