"""Per-connection waste in daphne's WebSocket stack (autobahn), removed once at start-up.

Measured with cProfile on a 200-socket connect burst (docs/performance.md "Connecting 1,000
sockets"): autobahn's `_connectionMade` pretty-prints its ~40 protocol options for a debug log
line on every connection (`pformat`, formatted even when debug logging is off) — the largest
single cost of a handshake after the imports. Here `pformat` becomes lazy: the text is only
built if that debug line is really written.
"""

from __future__ import annotations

from pprint import pformat


class _LazyPformat:
    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __str__(self) -> str:
        return pformat(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def install() -> None:
    """Idempotent; no-op without autobahn (daphne's dependency)."""
    try:
        from autobahn.websocket import protocol
    except ImportError:
        return
    if getattr(protocol, "pformat", None) is not _LazyPformat:
        protocol.pformat = _LazyPformat
