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
