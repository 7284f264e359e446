"""Log hygiene: no access token or query string ever reaches a log line."""

from __future__ import annotations

import logging
import re

# A JWT (three base64url parts), `token=`/`ticket=` query values and Authorization headers.
_PATTERNS = [
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "[redacted-jwt]"),
    (
        re.compile(r"(?i)\b(token|ticket|access_token|agent_token|enrollment_key)=[^&\s\"']+"),
        r"\1=[redacted]",
    ),
    (re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{8,}"), "Bearer [redacted]"),
    # Agent tokens carry a fixed prefix, so agent ids (UUIDs) in log lines stay readable.
    (re.compile(r"\bagt_[A-Za-z0-9_-]{8,}"), "agt_[redacted]"),
    # Telegram bot tokens travel in the request path (`/bot<id>:<secret>/sendMessage`).
    (re.compile(r"\bbot\d+:[A-Za-z0-9_-]{20,}"), "bot[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactTokensFilter(logging.Filter):
    """Rewrites the formatted message so tokens never leave the process in a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def strip_query(request_line: str) -> str:
    """`GET /api/x?token=… HTTP` → `GET /api/x HTTP`: access logs never carry query strings."""
    return re.sub(r"\?[^\s\"]*", "", request_line)


def redact_daphne_access_log() -> None:
    """Make daphne's access log (written straight to a stream, not through `logging`) drop
    query strings and redact tokens. Idempotent; called from siem.asgi, which daphne imports
    before it serves anything."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # daphne not installed: nothing to patch
        return
    if getattr(AccessLogGenerator.write_entry, "_siem_redacted", False):
        return
    original = AccessLogGenerator.write_entry

    def write_entry(self, host, date, request, *args, **kwargs):
        return original(self, host, date, redact(strip_query(str(request))), *args, **kwargs)

    write_entry._siem_redacted = True
    AccessLogGenerator.write_entry = write_entry
