"""Celery tasks of the integrations app: primary keys in, JSON only, safe to run twice.

Retries are not Celery retries: each attempt is its own Delivery row and its own `deliver`
task (queued with a countdown by `services.deliver`), so the log shows every attempt and a
worker restart loses none.
"""

from __future__ import annotations

from celery import shared_task

from integrations import services


@shared_task(name="integrations.tasks.route", ignore_result=True)
def route(kind: str, object_id: int, action: str, revision: int | None = None) -> int:
    """One alert or incident message → one pending delivery per matching integration."""
    return len(services.route(kind, object_id, action, revision))


@shared_task(name="integrations.tasks.deliver", ignore_result=True)
def deliver(delivery_id: int, waited: int = 0) -> str | None:
    """Send one attempt to one integration (a hung endpoint holds only this task)."""
    delivery = services.deliver(delivery_id, waited)
    return delivery.status if delivery else None


@shared_task(name="integrations.tasks.send_digest", ignore_result=True)
def send_digest(integration_id: int, window_start_ts: int) -> int | None:
    """At a rate window's end: the alerts over the limit, as one message."""
    digest = services.flush_digest(integration_id, window_start_ts)
    return digest.pk if digest else None


@shared_task(name="integrations.tasks.sweep_unrouted", ignore_result=True)
def sweep_unrouted() -> int:
    """Every minute: route what a process stopped before queueing (nothing is lost)."""
    return sum(services.sweep_unrouted())
