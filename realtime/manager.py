"""Broadcasts and presence counts: the one door from writes to WebSocket clients.

Services call `get_connection_manager().broadcast_*()`; the message is built immediately (the
payload reflects the write), serialized once to the JSON text clients receive, and sent by
`transaction.on_commit`, so a rolled-back write never reaches a browser. From async code the
call returns an awaitable. A failing Redis is logged, never raised into the caller; the next
broadcast simply tries again (every send opens or reuses a pooled connection), so delivery
resumes as soon as Redis is back.

Transport (`REALTIME_FANOUT`, chosen by measurement, docs/performance.md):
- `hub` (default): each message gets its channel's `seq`, is recorded in the channel's bounded
  history and published on `<prefix>:rt:<channel>` (`realtime.history`, one Lua script per
  write); each server process receives it once and writes it to its local sockets
  (`realtime.fanout`). Clients may resume with `?since=<seq>`.
- `layer`: Channels groups `siem.<channel>` through the configured channel layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import deque
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from realtime import messages

logger = logging.getLogger("realtime")

# Which channels each message type reaches; the dashboard receives everything.
ROUTES = {
    "event": ("events", "dashboard"),
    "alert": ("alerts", "dashboard"),
    "incident": ("incidents", "dashboard"),
    "agent": ("agents", "dashboard"),
    "statistics": ("dashboard",),
    "notification": ("notifications", "dashboard"),
}
REVOKE = "revoke"  # pseudo-route: the text is a JSON list of token ids

SEND_TIMEOUT_SEC = 5
# Channels group names: ASCII letters, digits, hyphens, underscores, periods; under 100 chars.
_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")

Send = tuple[str, str]  # (route, JSON text)


def group_name(channel: str) -> str:
    return f"siem.{channel}"


def session_group(jti: str) -> str:
    """In `layer` mode every socket joins its token's group, so revocation is targeted."""
    return f"siem.session.{jti}"


def encode(message: dict[str, Any]) -> str:
    """The JSON text a client receives; serialized once per write, not once per socket."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def fanout_mode() -> str:
    return getattr(settings, "REALTIME_FANOUT", "hub")


class ConnectionManager:
    """Broadcasting entry points of the guide, usable from sync and async code."""

    # --- broadcasts ----------------------------------------------------------------------
    def broadcast_event(self, data, action: str = "created"):
        return self._publish(
            messages.envelope("event", action, self._as_data(data, messages.event_data))
        )

    def broadcast_events(self, events):
        """Many events in one send (bulk ingestion)."""
        return self._publish_each("event", "created", events, messages.event_data)

    def send_events_now(self, events, *, key: str) -> None:
        """`event` messages for committed events, published now and once per `key` (the events
        pipeline's broadcast step, past commit: no `on_commit`).

        Raises when the messages could not be published (Redis unreachable), so that the
        caller's outbox keeps the work; in `hub` mode they also wait in this process's backlog
        and are published as soon as Redis answers, whichever comes first, once. (`layer` mode
        has no such record: a retry after a crash may deliver a message twice.)
        """
        sends = self._sends(
            [messages.envelope("event", "created", messages.event_data(e)) for e in events]
        )
        self._send_sync(sends, key=key, strict=True)

    def broadcast_alert(self, data, action: str = "created"):
        return self._publish(
            messages.envelope("alert", action, self._as_data(data, messages.alert_data))
        )

    def broadcast_alerts(self, alerts, action: str = "updated"):
        """Many alerts in one send (a detection micro-batch's repeats)."""
        return self._publish_each("alert", action, alerts, messages.alert_data)

    def broadcast_incident(self, data, action: str = "created"):
        return self._publish(
            messages.envelope("incident", action, self._as_data(data, messages.incident_data))
        )

    def broadcast_agent_status(self, data, action: str = "online"):
        return self._publish(
            messages.envelope("agent", action, self._as_data(data, messages.agent_data))
        )

    def broadcast_notification(self, data: dict[str, Any], severity: str = "high"):
        return self._publish(messages.notification(severity, data))

    def broadcast_statistics(self, data: dict[str, Any]):
        return self._publish(messages.envelope("statistics", "updated", data))

    def revoke_sessions(self, jtis: list[str]):
        """Close, in every server process, the sockets opened with these token ids.

        (Each socket also re-checks its session every REALTIME_SESSION_RECHECK_SEC, in case
        this message is lost while Redis is unreachable.)
        """
        safe = [jti for jti in dict.fromkeys(str(j) for j in jtis) if _GROUP_SAFE.match(jti)]
        if not safe:
            return None
        return self._after_commit([(REVOKE, json.dumps(safe))])

    # --- presence --------------------------------------------------------------------------
    def get_channel_count(self, channel: str) -> int:
        from realtime import presence

        return presence.count(channel)

    def get_total_connections(self) -> int:
        from realtime import presence

        return presence.total()

    # --- plumbing ------------------------------------------------------------------------
    @staticmethod
    def _as_data(data, serializer) -> dict[str, Any]:
        return dict(data) if isinstance(data, dict) else serializer(data)

    def _publish(self, message: dict[str, Any]):
        return self._publish_many([message])

    def _publish_each(self, kind: str, action: str, items, serializer):
        """One message per item, all in one send."""
        return self._publish_many([messages.envelope(kind, action, serializer(i)) for i in items])

    def _publish_many(self, batch: list[dict[str, Any]]):
        return self._after_commit(self._sends(batch))

    @staticmethod
    def _sends(batch: list[dict[str, Any]]) -> list[Send]:
        sends: list[Send] = []
        for message in batch:
            text = encode(message)
            sends.extend((channel, text) for channel in ROUTES[message["type"]])
        return sends

    def _after_commit(self, sends: list[Send]):
        """Send after the current transaction commits; in async code, return an awaitable task."""
        if not sends:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # robust: a failing broadcast never stops the other on-commit callbacks.
            transaction.on_commit(lambda: self._send_sync(sends), robust=True)
            return None
        return asyncio.ensure_future(self._send(sends))

    def _send_sync(self, sends: list[Send], key: str | None = None, strict: bool = False) -> None:
        """Publish now. A failure is logged and (hub) queued in the backlog; with `strict` it
        is also raised, for a caller that keeps the work durably (`send_events_now`)."""
        if not sends:
            return
        hub = fanout_mode() == "hub"
        if hub and _backlog.offer(sends, key):
            # Earlier broadcasts still wait for Redis: keep commit order.
            if strict:
                raise BroadcastDeferred(f"{len(sends)} message(s) queued behind the backlog")
            return
        try:
            if hub:
                from realtime import history

                history.publish(sends, key=key)
            elif strict:
                async_to_sync(self._send_layer)(sends)  # raises: the caller keeps the work
            else:
                async_to_sync(self._send)(sends)
        except (redis.RedisError, OSError) as exc:
            self._failed(sends, exc, retry=hub, key=key)
            if strict:
                raise
        except Exception as exc:  # never into the caller: the write has committed
            logger.exception("Broadcast of %d message(s) failed", len(sends))
            self._failed(sends, exc)
            if strict:
                raise

    async def _send(self, sends: list[Send]) -> None:
        hub = fanout_mode() == "hub"
        if hub and _backlog.offer(sends):
            return
        try:
            # Bounded: a hung Redis must not hold a request (or a worker) hostage.
            async with asyncio.timeout(SEND_TIMEOUT_SEC):
                if hub:
                    from realtime import history

                    await history.apublish(sends)
                else:
                    await self._send_layer(sends)
        except Exception as exc:
            self._failed(sends, exc, retry=hub)

    async def _send_layer(self, sends: list[Send]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for route, text in sends:
            if route == REVOKE:
                for jti in json.loads(text):
                    await layer.group_send(
                        session_group(jti), {"type": "session.revoked", "jtis": [jti]}
                    )
            else:
                await layer.group_send(group_name(route), {"type": "broadcast", "text": text})

    @staticmethod
    def _failed(
        sends: list[Send], exc: BaseException, retry: bool = False, key: str | None = None
    ) -> None:
        # Redis down or unreachable: the write is committed and stays; log, never raise.
        logger.warning(
            "Broadcast of %d message(s) failed (Redis unavailable?): %r%s",
            len(sends),
            exc,
            "; queued for retry" if retry else "",
        )
        if retry:
            _backlog.push(sends, key)


class BroadcastDeferred(Exception):
    """Not published yet: queued behind earlier broadcasts waiting for Redis."""


class _Backlog:
    """Hub broadcasts that could not be published, retried in order by one thread per process.

    While it holds anything, new broadcasts queue behind it, so clients still see writes in
    commit order and a client resuming with `since` misses nothing once Redis is back (they
    get their `seq` when published). Bounded by REALTIME_BACKLOG_MAX messages: past that the
    oldest are dropped, with an error in the log. In memory: a process that exits while Redis
    is still down loses what it holds (its writes are in the database).
    """

    def __init__(self) -> None:
        # (sends, key): the key makes a publish that the events pipeline may repeat happen once.
        self._items: deque[tuple[list[Send], str | None]] = deque()
        self._count = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def offer(self, sends: list[Send], key: str | None = None) -> bool:
        """Queue `sends` behind earlier failures; False when nothing waits (publish now)."""
        with self._lock:
            if not self._items:
                return False
            self._push(sends, key)
            return True

    def push(self, sends: list[Send], key: str | None = None) -> None:
        with self._lock:
            self._push(sends, key)

    def _push(self, sends: list[Send], key: str | None) -> None:
        self._items.append((sends, key))
        self._count += len(sends)
        limit = int(getattr(settings, "REALTIME_BACKLOG_MAX", 10_000))
        while self._count > limit and len(self._items) > 1:
            dropped, dropped_key = self._items.popleft()
            self._count -= len(dropped)
            # Keyed sends (stored events) are still owed by the events pipeline's outbox.
            logger.error(
                "Real-time backlog full: %d message(s) dropped%s",
                len(dropped),
                " (the events pipeline will publish them)" if dropped_key else "",
            )
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._drain, name="realtime-backlog", daemon=True
            )
            self._thread.start()

    def _drain(self) -> None:
        from realtime import history

        published = 0
        while True:
            with self._lock:
                if not self._items:
                    self._thread = None
                    break
                head = self._items[0]
            sends, key = head
            try:
                history.publish(sends, key=key)
            except (redis.RedisError, OSError):
                time.sleep(BACKLOG_RETRY_SEC)
                continue
            except Exception:
                logger.exception("Real-time backlog: %d message(s) dropped", len(sends))
            with self._lock:
                if self._items and self._items[0] is head:
                    self._items.popleft()
                    self._count -= len(sends)
            published += len(sends)
        logger.warning("Redis is back: %d queued broadcast(s) published", published)


BACKLOG_RETRY_SEC = 0.5
_backlog = _Backlog()
_manager = ConnectionManager()


def get_connection_manager() -> ConnectionManager:
    return _manager
