"""Turn the shapes agents really send into the fields of a SecurityEvent.

`normalize_record(record)` accepts our flat API fields (`computer`, `event_code`, `severity`,
`message`, ...) and Windows' own flat export (`EventID`, `Computer`, `TimeCreated`, `Level`,
EventData fields at the top level). The original record is kept whole in `raw`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

# Windows `Level` → severity 1–5. Security-log events are mostly Level 0 (LogAlways): their
# severity comes from the event code (SEVERITY_BY_CODE) instead.
LEVEL_TO_SEVERITY = {1: 5, 2: 4, 3: 3, 4: 1, 5: 1}
SEVERITY_BY_CODE = {
    1102: 5,  # audit log cleared
    4625: 3,  # failed logon
    4648: 3,  # logon with explicit credentials
    4720: 4,  # user account created
    4728: 4,  # member added to a security-enabled global group
    4732: 4,  # member added to a security-enabled local group
    4756: 4,  # member added to a security-enabled universal group
    4771: 3,  # Kerberos pre-authentication failed
    7045: 4,  # service installed
}
MESSAGES_BY_CODE = {
    1102: "The audit log was cleared",
    4624: "An account was successfully logged on",
    4625: "An account failed to log on",
    4634: "An account was logged off",
    4648: "A logon was attempted using explicit credentials",
    4662: "An operation was performed on an object",
    4672: "Special privileges assigned to new logon",
    4688: "A new process has been created",
    4720: "A user account was created",
    4728: "A member was added to a security-enabled global group",
    4732: "A member was added to a security-enabled local group",
    4756: "A member was added to a security-enabled universal group",
    4768: "A Kerberos authentication ticket (TGT) was requested",
    4769: "A Kerberos service ticket was requested",
    4771: "Kerberos pre-authentication failed",
    4776: "The computer attempted to validate the credentials for an account",
    5140: "A network share object was accessed",
    5145: "A network share object was checked for client access",
    7045: "A service was installed in the system",
}
_USER_FIELDS = ("TargetUserName", "SubjectUserName", "UserName", "User")
_IP_FIELDS = ("IpAddress", "SourceAddress", "SourceIp", "ClientAddress")
_BLANK = {"", "-", "::1", "127.0.0.1"}


def _first(record: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip() not in _BLANK:
            return value.strip()
    return ""


def _timestamp(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"unrecognised timestamp {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_windows_record(record: dict[str, Any]) -> bool:
    return "EventID" in record or "EventId" in record


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """Fields for `events.services.create_events` from one record (validation happens after)."""
    if not is_windows_record(record):
        return dict(record)
    code = record.get("EventID", record.get("EventId"))
    level = record.get("Level")
    try:
        code = int(code)
    except (TypeError, ValueError):
        pass  # left as is: validation reports the field
    severity = SEVERITY_BY_CODE.get(code) if isinstance(code, int) else None
    if severity is None:
        severity = LEVEL_TO_SEVERITY.get(level if isinstance(level, int) else -1, 2)
    return {
        "timestamp": _timestamp(record.get("TimeCreated")),
        "computer": record.get("Computer") or "",
        "event_code": code,
        "severity": severity,
        "message": record.get("Message") or MESSAGES_BY_CODE.get(code, f"Windows event {code}"),
        "source_type": "Windows " + str(record.get("Channel") or "Security"),
        "user_name": _first(record, _USER_FIELDS),
        "source_ip": _first(record, _IP_FIELDS),
        "agent_record_id": record.get("EventRecordID"),
        "raw": record,
    }
