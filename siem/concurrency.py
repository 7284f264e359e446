"""At most INGEST_MAX_CONCURRENCY requests of a server process store events at the same time.

Under daphne every HTTP request runs its Django code in a thread of its own, and the process's
event loop, which also writes every WebSocket message (realtime.fanout), competes with all of
them for the GIL. Fifty agents uploading at once were fifty threads in two processes: the
loop got too few turns to keep up with the broadcasts, and the database as many connections.
A request past the limit waits here, blocked on a semaphore (no GIL, no connection, no
CPU), for up to INGEST_QUEUE_TIMEOUT_SEC, then gets 503 with Retry-After: agents retry, and
interactive requests (the dashboard, triage, the admin) are never queued behind uploads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException

_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


class ServerBusy(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The server is busy storing other batches; retry in a moment."
    default_code = "server_busy"
    wait = 1  # DRF turns it into `Retry-After: 1`


BUSY_RESPONSE = OpenApiResponse(
    description="INGEST_MAX_CONCURRENCY batches are being stored by this server process and none "
    "finished within INGEST_QUEUE_TIMEOUT_SEC: nothing was stored; retry after `Retry-After` "
    "seconds."
)


def _semaphore() -> threading.BoundedSemaphore | None:
    global _slots
    size = settings.INGEST_MAX_CONCURRENCY
    if not size:
        return None
    with _lock:
        if _slots is None or _slots[0] != size:  # a changed setting (tests) takes a new one
            _slots = (size, threading.BoundedSemaphore(size))
        return _slots[1]


@contextmanager
def ingest_slot() -> Iterator[None]:
    """Hold one of this process's ingestion slots; ServerBusy (503) if none frees in time."""
    slots = _semaphore()
    if slots is None:
        yield
        return
    if not slots.acquire(timeout=settings.INGEST_QUEUE_TIMEOUT_SEC):
        raise ServerBusy()
    try:
        yield
    finally:
        slots.release()
