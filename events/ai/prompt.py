"""What an LLM is told about a batch of events, with user names and IPs masked on request.

The request is one JSON document per batch (SPEC: "one JSON object per batch"). With
`AI_MASK_SENSITIVE`, every user name and IP address is replaced by a stable pseudonym
(`user-1`, `ip-1`) before the request leaves the network, also inside free text such as command
lines; pseudonyms the model repeats in its description are mapped back when the answer is stored.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any

from events.normalize import event_fields

SYSTEM_PROMPT = (
    "You are a senior SOC analyst. You receive Windows security events as JSON and rate how "
    "likely each one is part of an attack. Answer with ONE JSON object and nothing else:\n"
    '{"analyses":[{"event_id":<int>,"score":<integer 0-100>,"category":"<one lower-case word '
    "such as brute_force, credential_access, privilege_escalation, persistence, "
    'lateral_movement, defense_evasion, execution, discovery, intrusion, benign>",'
    '"description":"<one or two sentences for an analyst>"}]}\n'
    "Give exactly one entry for every event_id you were given. 0 means routine activity, "
    "50 suspicious, 70+ likely malicious, 90+ an attack in progress."
)

# Windows record fields that say nothing about the event's meaning; not worth the tokens.
_NOISE = {
    "Provider_Guid",
    "Keywords",
    "Task",
    "Opcode",
    "Version",
    "ExecutionProcessID",
    "ExecutionThreadID",
    "EventRecordID",
    "ActivityID",
    "Channel",
    "Level",
    "_source_file",
}
USER_FIELDS = {
    "TargetUserName",
    "SubjectUserName",
    "MemberName",
    "UserName",
    "User",
    "AccountName",
    "SamAccountName",
    "TargetOutboundUserName",
    "user_name",
}
IP_FIELDS = {
    "IpAddress",
    "SourceAddress",
    "SourceIp",
    "ClientAddress",
    "DestAddress",
    "DestinationIp",
    "IpAddr",
    "source_ip",
}
# Well-known principals carry meaning and identify nobody.
_PUBLIC_NAMES = {
    "",
    "-",
    "system",
    "local service",
    "network service",
    "anonymous logon",
    "administrators",
    "users",
}
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Fa-f:])")
_MAX_FIELD = 500
_MAX_FIELDS = 40


class Masker:
    """Stable pseudonyms for one batch; `unmask` maps them back in the model's answer."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._forward: dict[tuple[str, str], str] = {}
        self._reverse: dict[str, str] = {}
        self._pattern: re.Pattern | None = None
        self._pattern_size = 0

    def _pseudonym(self, kind: str, value: str) -> str:
        key = (kind, value.lower())
        if key not in self._forward:
            alias = f"{kind}-{sum(1 for k in self._forward if k[0] == kind) + 1}"
            self._forward[key] = alias
            self._reverse[alias] = value
        return self._forward[key]

    def user(self, value: Any) -> Any:
        if not self.enabled or not isinstance(value, str):
            return value
        if value.strip().lower() in _PUBLIC_NAMES:
            return value
        return self._pseudonym("user", value.strip())

    def ip(self, value: Any) -> Any:
        if not self.enabled or not isinstance(value, str) or not _is_ip(value.strip()):
            return value
        return self._pseudonym("ip", value.strip())

    def text(self, value: Any) -> Any:
        """Free text: replace IP literals and every user name already seen in this batch."""
        if not self.enabled or not isinstance(value, str) or not value:
            return value
        value = _IPV4.sub(lambda m: self.ip(m.group(0)), value)
        value = _IPV6.sub(lambda m: self.ip(m.group(0)), value)
        pattern = self._names_pattern()
        if pattern is not None:
            value = pattern.sub(lambda m: self._forward[("user", m.group(0).lower())], value)
        return value

    def _names_pattern(self) -> re.Pattern | None:
        """One regex for every user name seen so far (rebuilt only when a name was added)."""
        if self._pattern_size != len(self._forward):
            # Very short names ("a") would mask ordinary words; they stay in their own fields.
            names = sorted(
                (name for kind, name in self._forward if kind == "user" and len(name) >= 3),
                key=len,
                reverse=True,
            )
            alternation = "|".join(re.escape(name) for name in names)
            self._pattern = (
                re.compile(rf"(?<![\w$])(?:{alternation})(?![\w$])", re.I) if names else None
            )
            self._pattern_size = len(self._forward)
        return self._pattern

    def unmask(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        for alias in sorted(self._reverse, key=len, reverse=True):
            # A function, not a replacement string: names like DOMAIN\user hold backslashes.
            original = self._reverse[alias]
            text = re.sub(rf"\b{re.escape(alias)}\b", lambda _m, o=original: o, text)
        return text


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.split("%")[0])
    except ValueError:
        return False
    return True


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD:
        return value[:_MAX_FIELD] + "…"
    return value


def event_payload(event, masker: Masker) -> dict[str, Any]:
    """The description of one event sent to the model (masked if the masker is enabled)."""
    raw = event_fields(event.raw)
    fields: dict[str, Any] = {}
    # Names first, so that free text below can mask every name this event mentions.
    for name, value in raw.items():
        if name in USER_FIELDS:
            fields[name] = masker.user(value)
        elif name in IP_FIELDS:
            fields[name] = masker.ip(value)
    user_name = masker.user(event.user_name) if event.user_name else ""
    source_ip = masker.ip(event.source_ip) if event.source_ip else ""
    for name, value in raw.items():
        if len(fields) >= _MAX_FIELDS:
            break
        if name in _NOISE or name in fields or value in (None, "", "-"):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        fields[name] = _clip(masker.text(value))
    return {
        "event_id": event.event_id,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        "computer": event.computer,
        "event_code": event.event_code,
        "severity": event.severity,
        "source_type": event.source_type,
        "message": _clip(masker.text(event.message)),
        "user_name": user_name,
        "source_ip": source_ip,
        "fields": fields,
    }


def _register_names(event, masker: Masker) -> None:
    raw = event_fields(event.raw)
    for name, value in raw.items():
        if name in USER_FIELDS:
            masker.user(value)
        elif name in IP_FIELDS:
            masker.ip(value)
    masker.user(event.user_name)
    masker.ip(event.source_ip)


def user_prompt(events: Sequence, masker: Masker) -> str:
    # Every name of the batch first, so free text of one event masks names seen in another.
    for event in events:
        _register_names(event, masker)
    payload = {"events": [event_payload(event, masker) for event in events]}
    return "Analyze these events and answer with the JSON object described above.\n" + json.dumps(
        payload, ensure_ascii=False, default=str
    )
