"""Slow-client protection: a socket that stops reading cannot grow the server's memory.

ASGI gives an application no view of a socket's send buffer, and daphne (Twisted) buffers
whatever is written, without limit. So this hooks daphne's WebSocket protocol, once, from
`siem.asgi`: before each outgoing message it looks at the bytes Twisted still holds for that
connection. A socket is finished when that backlog has stayed above `REALTIME_MAX_BUFFER_BYTES`
for more than `REALTIME_SLOW_CLIENT_SEC` (a burst that a reading client drains is fine), or at
once when it passes `HARD_LIMIT_FACTOR` times the limit. Then nothing more is queued, a close
frame with code 4008 ("Client too slow") is queued, and if the client has not completed the
close within `ABORT_AFTER_SEC` the TCP connection is aborted and its buffer freed. The client
reconnects; what it missed is available through the REST API.

The kernel's socket buffers come on top (not process memory), so per connection the process
holds at most about HARD_LIMIT_FACTOR x REALTIME_MAX_BUFFER_BYTES plus one message.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger("realtime")

CLOSE_TOO_SLOW = 4008
ABORT_AFTER_SEC = 2.0
HARD_LIMIT_FACTOR = 16
DEFAULT_MAX_BUFFER_BYTES = 512 * 1024
DEFAULT_SLOW_CLIENT_SEC = 10


def pending_bytes(transport) -> int:
    """Bytes a Twisted transport has accepted but not yet handed to the kernel."""
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return buffered + getattr(transport, "_tempDataLen", 0)


def install() -> None:
    """Bound daphne's per-socket send buffer (idempotent; no-op without daphne)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    if getattr(WebSocketProtocol.serverSend, "_siem_bounded", False):
        return
    original = WebSocketProtocol.serverSend

    def serverSend(self, content, binary=False):
        if getattr(self, "_siem_too_slow", False):
            return None
        limit = getattr(settings, "REALTIME_MAX_BUFFER_BYTES", DEFAULT_MAX_BUFFER_BYTES)
        transport = getattr(self, "transport", None)
        if limit and transport is not None:
            pending = pending_bytes(transport)
            if pending <= limit:
                self._siem_behind_since = None
            else:
                now = time.monotonic()
                since = getattr(self, "_siem_behind_since", None)
                if since is None:
                    self._siem_behind_since = since = now
                patience = getattr(settings, "REALTIME_SLOW_CLIENT_SEC", DEFAULT_SLOW_CLIENT_SEC)
                if pending > HARD_LIMIT_FACTOR * limit or now - since > patience:
                    _give_up(self, transport)
                    return None
        return original(self, content, binary)

    serverSend._siem_bounded = True
    WebSocketProtocol.serverSend = serverSend


def _give_up(protocol, transport) -> None:
    from twisted.internet import reactor

    from siem.metrics import WS_SLOW_CLIENT_CLOSES

    protocol._siem_too_slow = True
    WS_SLOW_CLIENT_CLOSES.inc()
    logger.warning(
        "Closing a WebSocket that stopped reading: %d bytes unsent (close %d)",
        pending_bytes(transport),
        CLOSE_TOO_SLOW,
    )
    protocol.sendClose(code=CLOSE_TOO_SLOW, reason="Client too slow")

    def abort() -> None:
        if protocol.state != protocol.STATE_CLOSED:
            transport.abortConnection()

    reactor.callLater(ABORT_AFTER_SEC, abort)
