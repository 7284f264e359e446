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
        if not admit(self):
            return None
        return original(self, content, binary)

    serverSend._siem_bounded = True
    WebSocketProtocol.serverSend = serverSend


def admit(protocol) -> bool:
    """May one more message be queued on this daphne socket? False once it is too slow (it is
    then being closed with 4008)."""
    if getattr(protocol, "_siem_too_slow", False):
        return False
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return True
    pending = pending_bytes(transport)
    if not pending:  # the usual case: nothing waiting, no settings to read
        protocol._siem_behind_since = None
        return True
    limit = getattr(settings, "REALTIME_MAX_BUFFER_BYTES", DEFAULT_MAX_BUFFER_BYTES)
    if limit:
        if pending <= limit:
            protocol._siem_behind_since = None
        else:
            now = time.monotonic()
            since = getattr(protocol, "_siem_behind_since", None)
            if since is None:
                protocol._siem_behind_since = since = now
            patience = getattr(settings, "REALTIME_SLOW_CLIENT_SEC", DEFAULT_SLOW_CLIENT_SEC)
            if pending > HARD_LIMIT_FACTOR * limit or now - since > patience:
                _give_up(protocol, transport)
                return False
    return True


# --- the hub's direct path -------------------------------------------------------------------
# Measured (docs/performance.md "Real-time fan-out"): an ASGI `websocket.send` costs ~45 us of
# CPU per socket in daphne + autobahn (handle_reply, a debug log call, UTF-8 encoding and
# framing, per socket). A broadcast is the same frame for every socket, so the hub builds it
# once and hands the bytes to each socket's Twisted transport, after the same slow-client check.


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented RFC 6455 text frame (server to client), no extensions
    (daphne negotiates no permessage-deflate)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def daphne_protocol(send):
    """The daphne WebSocket protocol behind an ASGI `send` callable, or None (another server,
    the test communicator): daphne passes `partial(server.handle_reply, protocol)`."""
    args = getattr(send, "args", None)
    if not args:
        return None
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return None
    protocol = args[0]
    if not isinstance(protocol, WebSocketProtocol):
        return None
    if getattr(protocol, "_perMessageCompress", None) is not None:
        return None  # a compressed socket needs autobahn's own framing
    return protocol


def write_frame(protocol, wire: bytes) -> None:
    """Send a pre-built frame on an open daphne socket (dropped if it is closing or slow).

    When Twisted holds nothing for the socket, the frame goes to the kernel at once, as an
    asyncio transport does (Twisted would register the socket for writability and send on the
    next reactor turn: an epoll change and a wake-up per socket and message); the rest, or
    everything when data is already waiting, is queued on the transport in order.
    """
    if protocol.state != protocol.STATE_OPEN or not admit(protocol):
        return
    transport = protocol.transport
    if (
        not pending_bytes(transport)
        and not getattr(transport, "TLS", False)
        and not transport.disconnecting
        and getattr(transport, "socket", None) is not None
    ):
        try:
            sent = transport.socket.send(wire)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the connection is broken: the reactor sees it on its next read
        if sent == len(wire):
            return
        wire = wire[sent:]
    transport.write(wire)


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
