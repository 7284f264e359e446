"""Protocol errors on a WebSocket are answered with a close frame, not a dropped connection.

daphne (autobahn) already refuses incoming messages and frames over 1 MiB
(`--websocket-max-message-size`, `--websocket-max-frame-size`) and text that is not UTF-8, but
autobahn's default `failByDrop` then drops the TCP connection without a word, so a client
cannot tell an attack or a bug from a network fault. With `failByDrop` off, the client gets the
close code RFC 6455 defines: 1009 (message too big), 1007 (invalid payload data), 1002
(protocol error); autobahn waits `closeHandshakeTimeout` for the reply, then drops.
"""

from __future__ import annotations


def install() -> None:
    """Make every daphne WebSocket factory answer protocol errors with a close frame
    (idempotent; no-op without daphne)."""
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:
        return
    if getattr(WebSocketFactory.__init__, "_siem_close_on_error", False):
        return
    original = WebSocketFactory.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.setProtocolOptions(failByDrop=False)

    __init__._siem_close_on_error = True
    WebSocketFactory.__init__ = __init__
