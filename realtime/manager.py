"""Broadcasts and presence counts: the one door from writes to WebSocket clients.

Services call `get_connection_manager().broadcast_*()`; the message is built immediately (the
payload reflects the write) and sent by `transaction.on_commit`, so a rolled-back write never
reaches a browser. A failing Redis is logged, never raised into the caller.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime import messages

logger = logging.getLogger("realtime")

# Which channel groups each message type reaches; the dashboard receives everything.
ROUTES = {
    "event": ("events", "dashboard"),
    "alert": ("alerts", "dashboard"),
    "incident": ("incidents", "dashboard"),
    "agent": ("agents", "dashboard"),
    "statistics": ("dashboard",),
    "notification": ("notifications", "dashboard"),
}


def group_name(channel: str) -> str:
    return f"siem.{channel}"


class ConnectionManager:
    """Broadcasting entry points of the guide, usable from sync and async code."""

    # --- broadcasts ----------------------------------------------------------------------
    def broadcast_event(self, data, action: str = "created"):
        return self._publish(
            messages.envelope("event", action, self._as_data(data, messages.event_data))
        )

    def broadcast_events(self, events) -> None:
        """Many events in one send (bulk ingestion)."""
        batch = [messages.envelope("event", "created", messages.event_data(e)) for e in events]
        return self._publish_many(batch)

    def broadcast_alert(self, data, action: str = "created"):
        return self._publish(
            messages.envelope("alert", action, self._as_data(data, messages.alert_data))
        )

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

    def revoke_sessions(self, jtis: list[str]) -> None:
        """Ask every server process to close sockets opened with these token ids."""
        payload = {"type": "session.revoked", "jtis": list(jtis)}
        self._after_commit([(group_name("sessions"), payload)])

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

    def _publish_many(self, batch: list[dict[str, Any]]):
        sends = [
            (group_name(channel), {"type": "broadcast", "message": message})
            for message in batch
            for channel in ROUTES[message["type"]]
        ]
        return self._after_commit(sends)

    def _after_commit(self, sends: list[tuple[str, dict[str, Any]]]):
        """Send after the current transaction commits; in async code, return an awaitable task."""
        if not sends:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            transaction.on_commit(lambda: self._send_sync(sends))
            return None
        return asyncio.ensure_future(self._send(sends))

    def _send_sync(self, sends: list[tuple[str, dict[str, Any]]]) -> None:
        async_to_sync(self._send)(sends)

    async def _send(self, sends: list[tuple[str, dict[str, Any]]]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            for group, payload in sends:
                await layer.group_send(group, payload)
        except Exception:
            # Redis down or unreachable: the write is committed and stays; log, never raise.
            logger.exception("Broadcast of %d message(s) failed; Redis unavailable?", len(sends))


_manager = ConnectionManager()


def get_connection_manager() -> ConnectionManager:
    return _manager
