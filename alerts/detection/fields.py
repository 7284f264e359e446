"""The field view rules match against: one normalized, case-insensitive dict per event.

Real Windows data does not look like the values Sigma rules are written with, so every value is
put in one canonical form before any rule sees it:

- field names are looked up case-insensitively (`ProcessID` and `ProcessId` are one field; if a
  record carries both with different values, either may match), and a few names rules spell
  differently from EventData are aliased (`Accesses` → `AccessList`);
- string values are stripped (`"NtLmSsp "`) and compared lower-cased (`0xc000006d` vs
  `0xC000006D`, `Administrators` vs `administrators`);
- numbers compare by their decimal text (`LogonType: 3` matches `3` and `"3"`);
- message-table tokens (`%%2313`, `%%4417`) are also offered in their English text, so a rule
  written against rendered text (`Accesses|contains: WriteData`) matches the raw token;
- `-` and the empty string are Windows' "no value" placeholders: a Sigma null matches them.

A value is a tuple of alternatives (usually one); a matcher succeeds if any alternative does.
`original` keeps the stripped but not lower-cased text, for regular expressions and `|cased`.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any

from alerts.detection.logsource import AUDIT_4688_FIELDS
from events.normalize import event_fields

# Message-table tokens seen in Security logs (msobjs.dll / adtschema.dll), rendered text.
MESSAGE_TOKENS = {
    "%%1537": "DELETE",
    "%%1538": "READ_CONTROL",
    "%%1539": "WRITE_DAC",
    "%%1540": "WRITE_OWNER",
    "%%1541": "SYNCHRONIZE",
    "%%1542": "ACCESS_SYS_SEC",
    "%%1792": "<value changed, but not displayed>",
    "%%1793": "<value not set>",
    "%%1794": "<never>",
    "%%1832": "Identification",
    "%%1833": "Impersonation",
    "%%1840": "Delegation",
    "%%1842": "Yes",
    "%%1843": "No",
    "%%1936": "Type 1",
    "%%1937": "Type 2",
    "%%1938": "Type 3",
    "%%2080": "Account Disabled",
    "%%2082": "'Password Not Required' - Enabled",
    "%%2084": "'Normal Account' - Enabled",
    "%%2304": "An Error occured during Logon.",
    "%%2305": "The specified user account has expired.",
    "%%2307": "Account locked out.",
    "%%2308": "The specified account's password has expired.",
    "%%2310": "Account currently disabled.",
    "%%2311": "Account logon time restriction violation.",
    "%%2312": "User not allowed to logon at this computer.",
    "%%2313": "Unknown user name or bad password.",
    "%%4416": "ReadData (or ListDirectory)",
    "%%4417": "WriteData (or AddFile)",
    "%%4418": "AppendData (or AddSubdirectory or CreatePipeInstance)",
    "%%4419": "ReadEA",
    "%%4420": "WriteEA",
    "%%4421": "Execute/Traverse",
    "%%4422": "DeleteChild",
    "%%4423": "ReadAttributes",
    "%%4424": "WriteAttributes",
    "%%7688": "Control Access",
}
# Field names rules use that Windows records spell differently (rule name → record name).
# Sigma's 5145 rules say `Accesses` (the rendered-message label); EventData calls it AccessList.
FIELD_ALIASES = {"accesses": "accesslist"}
_TOKEN = re.compile(r"%%\d+")
PLACEHOLDERS = frozenset({"", "-"})


def _expand_tokens(text: str) -> str:
    return _TOKEN.sub(lambda m: MESSAGE_TOKENS.get(m.group(0), m.group(0)), text)


def _text(value: Any) -> str | None:
    if type(value) is str:  # the common case first
        return value.strip()
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        # Unnamed EventData (`<Data>` without a Name, as Application logs write it) parses as
        # {"#text": [...]}: its text is what SigmaHQ's `Data|contains` rules read.
        return _text(value["#text"]) if set(value) == {"#text"} else None
    if isinstance(value, list):
        parts = [_text(item) for item in value if not isinstance(item, dict | list)]
        return "\n".join(part for part in parts if part is not None)
    return str(value).strip()


@lru_cache(maxsize=65536)
def _alternatives(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(lower-cased alternatives, original alternatives) of one stripped text."""
    if "%%" in text:
        expanded = _expand_tokens(text)
        if expanded != text:
            return (text.lower(), expanded.lower()), (text, expanded)
    return (text.lower(),), (text,)


class FieldView:
    """The normalized fields of one event, shared by every rule.

    Every field is normalized in one pass on first use (a dict of lower-case name → values):
    with thousands of rules, the pre-filter reads most of an event's fields anyway, and one
    loop costs less than a lookup chain per field.
    """

    __slots__ = ("event", "_fields", "_entries", "_channel", "_all_text")

    def __init__(self, event, fields: dict[str, Any]) -> None:
        self.event = event
        self._fields = fields
        # lower-case name → (lower-cased alternatives, original alternatives)
        self._entries: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None
        self._channel: str | None = None
        self._all_text: str | None = None

    def _build(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        entries: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for recorded, raw in self._fields.items():
            # Inlined common case (a plain string without `%%` tokens): this loop runs for
            # every field of every event the rules may match.
            if type(raw) is str:
                text = raw.strip()
            else:
                text = _text(raw)
                if text is None:
                    continue
            if "%%" in text:
                low, orig = _alternatives(text)
            else:
                low, orig = (text.lower(),), (text,)
            name = recorded.lower()
            before = entries.get(name)
            if before is not None:  # ProcessID / ProcessId: keep both values
                low, orig = before[0] + low, before[1] + orig
            entries[name] = (low, orig)
        self._entries = entries
        return entries

    def _entry(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        entries = self._entries
        if entries is None:
            entries = self._build()
        entry = entries.get(name)
        if entry is None and name in FIELD_ALIASES:
            entry = entries.get(FIELD_ALIASES[name])
        return entry

    def get(self, name: str) -> tuple[str, ...] | None:
        """Lower-cased alternatives of a field (lower-case name), None if it has no value."""
        entries = self._entries
        if entries is None:
            entries = self._build()
        entry = entries.get(name)
        if entry is None:
            if name not in FIELD_ALIASES:
                return None
            entry = entries.get(FIELD_ALIASES[name])
            if entry is None:
                return None
        return entry[0]

    def get_original(self, name: str) -> tuple[str, ...]:
        """The same, stripped but not lower-cased (regular expressions, `|cased`)."""
        entry = self._entry(name)
        return entry[1] if entry else ()

    def has(self, name: str) -> bool:
        return self._entry(name) is not None

    def all_values(self):
        """Every field's lower-cased alternatives (keyword rules search them all)."""
        entries = self._entries if self._entries is not None else self._build()
        for low, _ in entries.values():
            yield low

    def all_text(self) -> str:
        """Every lower-cased alternative of every field, NUL-separated (keyword rules)."""
        text = self._all_text
        if text is None:
            text = self._all_text = "\x00".join(v for values in self.all_values() for v in values)
        return text

    def value(self, name: str) -> str | None:
        """The lower-cased value of a field as recorded (placeholders included), or None."""
        values = self.get(name)
        return values[0] if values else None

    def first(self, *names: str) -> str:
        """The first real (non-placeholder) lower-cased value of these fields, or ''."""
        for name in names:
            for value in self.get(name) or ():
                if value not in PLACEHOLDERS:
                    return value
        return ""

    @property
    def channel(self) -> str:
        """The event's channel, lower case: what Sigma logsources are mapped to.

        A record without one is an API event (`{"computer", "event_code", ...}`, stored as
        "Windows Security") and reads as Security; an ETW record with a provider but no channel
        (Microsoft-Windows-RPC in the attack captures) reads as no channel at all.
        """
        channel = self._channel
        if channel is None:
            value = self.value("channel")
            if value is None:
                value = "" if self.has("provider_name") else "security"
            channel = self._channel = value
        return channel

    @property
    def code(self) -> int | None:
        """The event id as a number (None if the record has none that parses)."""
        value = self.value("eventid")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None


def event_view(event) -> FieldView:
    """Fields of a stored SecurityEvent: its raw record flattened, plus the model's own columns."""
    fields = event_fields(event.raw) if event.raw else {}
    fields.setdefault("EventID", event.event_code)
    fields.setdefault("Computer", event.computer)
    if event.user_name:
        fields.setdefault("TargetUserName", event.user_name)
    if event.source_ip:
        fields.setdefault("IpAddress", event.source_ip)
    if event.event_code == 4688:
        # Security 4688 is process_creation too: rules read Sysmon's names (Image, ParentImage).
        for rule_name, recorded in AUDIT_4688_FIELDS.items():
            if recorded in fields:
                fields.setdefault(rule_name, fields[recorded])
    return FieldView(event, fields)


def source_address(value: str) -> str:
    """Canonical source address: IPv4-mapped IPv6 (`::ffff:10.0.0.5`) becomes IPv4."""
    if value.startswith("::ffff:"):
        tail = value[7:]
        try:
            ipaddress.IPv4Address(tail)
        except ValueError:
            return value
        return tail
    return value


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def remote_source(view: FieldView) -> str:
    """The remote source address of a logon-type event, or '' for local and unknown ones."""
    address = source_address(view.first("ipaddress", "sourceaddress", "clientaddress"))
    return "" if address in LOOPBACK else address
