"""Turn the shapes agents really send into the fields of a SecurityEvent.

Accepted record shapes (`detect_shape` tells them apart):

- ``api``          our flat API fields: ``computer``, ``event_code``, ``severity``, ``message`` ...
                   (optionally ``record_id``, the agent's own id of the record, and ``raw``).
- ``flat``         Windows' flat evtx export, as in the JSON Lines test data: ``EventID``,
                   ``Computer``, ``Channel``, ``TimeCreated``, ``EventRecordID``, ``Level`` and
                   every EventData field at the top level.
- ``get_winevent`` ``Get-WinEvent | ConvertTo-Json``: ``Id``, ``MachineName``, ``TimeCreated``
                   (``/Date(ms)/`` or ISO), ``Level``/``LevelDisplayName``, ``Message``,
                   ``ProviderName``, ``LogName``, ``RecordId``, positional ``Properties``.
- ``evtx``         nested ``{"Event": {"System": ..., "EventData": ...}}`` as the `evtx` parser
                   (and python-evtx / xmltodict) print it.
- ``winlogbeat``   ``winlog.event_id``, ``winlog.computer_name``, ``winlog.event_data``,
                   ``@timestamp``, ``log.level``, ``winlog.record_id`` (nested or dotted keys).

`normalize_record(record)` returns the event fields with the original record kept whole in
``raw``; it never raises for a dict: what it cannot make sense of is left for validation to
report per field. `event_fields(raw)` gives the flat Windows field dict (System fields merged
with EventData) for any shape: detection rules and the AI analyzer read events through it.

Severity (1–5) is chosen by the table in docs/ingestion.md: a security-significant event code
wins; otherwise the Windows level; an "Audit Failure" raises the result to at least 3.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from events.windows import describe

# --- Severity -----------------------------------------------------------------------------------
# Windows `Level` → severity 1–5. 0 is LogAlways: nearly every Security-log audit record has it,
# and an audit record is worth a little more than an informational application message.
LEVEL_TO_SEVERITY = {0: 2, 1: 5, 2: 4, 3: 3, 4: 1, 5: 1}
# Level names as Get-WinEvent (LevelDisplayName) and Winlogbeat (log.level) spell them.
LEVEL_NAMES = {
    "logalways": 0,
    "critical": 1,
    "error": 2,
    "warning": 3,
    "information": 4,
    "informational": 4,
    "info": 4,
    "verbose": 5,
}
AUDIT_FAILURE_MIN_SEVERITY = 3
AUDIT_FAILURE_KEYWORD = 0x0010000000000000
SEVERITY_BY_CODE = {
    1100: 4,  # the event logging service shut down
    1102: 5,  # audit log cleared
    4625: 3,  # failed logon
    4648: 3,  # logon with explicit credentials
    4697: 4,  # service installed (Security log)
    4698: 3,  # scheduled task created
    4719: 4,  # system audit policy changed
    4720: 4,  # user account created
    4724: 3,  # password reset attempt
    4726: 3,  # user account deleted
    4728: 4,  # member added to a security-enabled global group
    4732: 4,  # member added to a security-enabled local group
    4740: 4,  # account locked out
    4756: 4,  # member added to a security-enabled universal group
    4771: 3,  # Kerberos pre-authentication failed
    5152: 2,  # WFP blocked a packet: an audit failure, but firewall noise
    5157: 2,  # WFP blocked a connection: same
    7045: 4,  # service installed (System log)
}
MESSAGES_BY_CODE = {
    1100: "The event logging service has shut down",
    1102: "The audit log was cleared",
    4624: "An account was successfully logged on",
    4625: "An account failed to log on",
    4634: "An account was logged off",
    4648: "A logon was attempted using explicit credentials",
    4662: "An operation was performed on an object",
    4672: "Special privileges assigned to new logon",
    4688: "A new process has been created",
    4697: "A service was installed in the system",
    4698: "A scheduled task was created",
    4719: "System audit policy was changed",
    4720: "A user account was created",
    4724: "An attempt was made to reset an account's password",
    4726: "A user account was deleted",
    4728: "A member was added to a security-enabled global group",
    4732: "A member was added to a security-enabled local group",
    4740: "A user account was locked out",
    4756: "A member was added to a security-enabled universal group",
    4768: "A Kerberos authentication ticket (TGT) was requested",
    4769: "A Kerberos service ticket was requested",
    4771: "Kerberos pre-authentication failed",
    4776: "The computer attempted to validate the credentials for an account",
    5140: "A network share object was accessed",
    5145: "A network share object was checked for client access",
    5152: "The Windows Filtering Platform blocked a packet",
    5156: "The Windows Filtering Platform has permitted a connection",
    7045: "A service was installed in the system",
}
_USER_FIELDS = ("TargetUserName", "SubjectUserName", "UserName", "User")
_IP_FIELDS = ("IpAddress", "SourceAddress", "SourceIp", "ClientAddress")
_BLANK = {"", "-", "::1", "127.0.0.1"}

# --- Get-WinEvent positional Properties ---------------------------------------------------------
# Get-WinEvent gives EventData values by position only. Names for the events detection needs,
# keyed by (event id, number of values): the count tells the template versions apart. Other
# events keep their values as Param1..ParamN.
_SUBJECT = ("SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId")
_TARGET_ACCOUNT = ("TargetUserName", "TargetDomainName", "TargetSid", *_SUBJECT)
_GROUP_MEMBER = ("MemberName", "MemberSid", *_TARGET_ACCOUNT, "PrivilegeList")
_4624_V0 = (
    *_SUBJECT,
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "LogonType",
    "LogonProcessName",
    "AuthenticationPackageName",
    "WorkstationName",
    "LogonGuid",
    "TransmittedServices",
    "LmPackageName",
    "KeyLength",
    "ProcessId",
    "ProcessName",
    "IpAddress",
    "IpPort",
)
_4624_V1 = (*_4624_V0, "ImpersonationLevel")
_4624_V2 = (
    *_4624_V1,
    "RestrictedAdminMode",
    "TargetOutboundUserName",
    "TargetOutboundDomainName",
    "VirtualAccount",
    "TargetLinkedLogonId",
    "ElevatedToken",
)
_4688_V0 = (*_SUBJECT, "NewProcessId", "NewProcessName", "TokenElevationType", "ProcessId")
_4688_V1 = (*_4688_V0, "CommandLine")
_4688_V2 = (
    *_4688_V1,
    "TargetUserSid",
    "TargetUserName",
    "TargetDomainName",
    "TargetLogonId",
    "ParentProcessName",
    "MandatoryLabel",
)
_USER_ACCOUNT_CHANGE = (
    *_TARGET_ACCOUNT,
    "PrivilegeList",
    "SamAccountName",
    "DisplayName",
    "UserPrincipalName",
    "HomeDirectory",
    "HomePath",
    "ScriptPath",
    "ProfilePath",
    "UserWorkstations",
    "PasswordLastSet",
    "AccountExpires",
    "PrimaryGroupId",
    "AllowedToDelegateTo",
    "OldUacValue",
    "NewUacValue",
    "UserAccountControl",
    "UserParameters",
    "SidHistory",
    "LogonHours",
)
_SYSMON_1 = (
    "RuleName",
    "UtcTime",
    "ProcessGuid",
    "ProcessId",
    "Image",
    "FileVersion",
    "Description",
    "Product",
    "Company",
    "OriginalFileName",
    "CommandLine",
    "CurrentDirectory",
    "User",
    "LogonGuid",
    "LogonId",
    "TerminalSessionId",
    "IntegrityLevel",
    "Hashes",
    "ParentProcessGuid",
    "ParentProcessId",
    "ParentImage",
    "ParentCommandLine",
)
_SYSMON_10 = (
    "RuleName",
    "UtcTime",
    "SourceProcessGUID",
    "SourceProcessId",
    "SourceThreadId",
    "SourceImage",
    "TargetProcessGUID",
    "TargetProcessId",
    "TargetImage",
    "GrantedAccess",
    "CallTrace",
)
_TEMPLATES: dict[int, tuple[tuple[str, ...], ...]] = {
    1102: (_SUBJECT,),
    4624: (_4624_V0, _4624_V1, _4624_V2),
    4625: (
        (
            *_SUBJECT,
            "TargetUserSid",
            "TargetUserName",
            "TargetDomainName",
            "Status",
            "FailureReason",
            "SubStatus",
            "LogonType",
            "LogonProcessName",
            "AuthenticationPackageName",
            "WorkstationName",
            "TransmittedServices",
            "LmPackageName",
            "KeyLength",
            "ProcessId",
            "ProcessName",
            "IpAddress",
            "IpPort",
        ),
    ),
    4634: (("TargetUserSid", "TargetUserName", "TargetDomainName", "TargetLogonId", "LogonType"),),
    4648: (
        (
            *_SUBJECT,
            "LogonGuid",
            "TargetUserName",
            "TargetDomainName",
            "TargetServerName",
            "TargetInfo",
            "ProcessId",
            "ProcessName",
            "IpAddress",
            "IpPort",
        ),
    ),
    4672: ((*_SUBJECT, "PrivilegeList"),),
    4688: (_4688_V0, _4688_V1, _4688_V2),
    4720: (_USER_ACCOUNT_CHANGE,),
    4722: (_TARGET_ACCOUNT,),
    4724: (_TARGET_ACCOUNT,),
    4725: (_TARGET_ACCOUNT,),
    4726: ((*_TARGET_ACCOUNT, "PrivilegeList"),),
    4728: (_GROUP_MEMBER,),
    4732: (_GROUP_MEMBER,),
    4733: (_GROUP_MEMBER,),
    4740: (_TARGET_ACCOUNT,),
    4756: (_GROUP_MEMBER,),
    4768: (
        (
            "TargetUserName",
            "TargetDomainName",
            "TargetSid",
            "ServiceName",
            "ServiceSid",
            "TicketOptions",
            "Status",
            "TicketEncryptionType",
            "PreAuthType",
            "IpAddress",
            "IpPort",
            "CertIssuerName",
            "CertSerialNumber",
            "CertThumbprint",
        ),
    ),
    4769: (
        (
            "TargetUserName",
            "TargetDomainName",
            "ServiceName",
            "ServiceSid",
            "TicketOptions",
            "TicketEncryptionType",
            "IpAddress",
            "IpPort",
            "Status",
            "LogonGuid",
            "TransmittedServices",
        ),
    ),
    4771: (
        (
            "TargetUserName",
            "TargetSid",
            "ServiceName",
            "TicketOptions",
            "Status",
            "PreAuthType",
            "IpAddress",
            "IpPort",
            "CertIssuerName",
            "CertSerialNumber",
            "CertThumbprint",
        ),
    ),
    4776: (("PackageName", "TargetUserName", "Workstation", "Status"),),
    5140: (
        (
            *_SUBJECT,
            "ObjectType",
            "IpAddress",
            "IpPort",
            "ShareName",
            "ShareLocalPath",
            "AccessMask",
            "AccessList",
        ),
    ),
    5145: (
        (
            *_SUBJECT,
            "ObjectType",
            "IpAddress",
            "IpPort",
            "ShareName",
            "ShareLocalPath",
            "RelativeTargetName",
            "AccessMask",
            "AccessList",
            "AccessReason",
        ),
    ),
    7045: (("ServiceName", "ImagePath", "ServiceType", "StartType", "AccountName"),),
}
_SYSMON_TEMPLATES = {1: (_SYSMON_1, (*_SYSMON_1, "ParentUser")), 10: (_SYSMON_10,)}


def _property_names(code: Any, count: int, provider: str) -> tuple[str, ...] | None:
    if "sysmon" in provider.lower():
        templates = _SYSMON_TEMPLATES.get(code, ())
    else:
        templates = _TEMPLATES.get(code, ())
    for names in templates:
        if len(names) == count:
            return names
    return None


# --- Small helpers ------------------------------------------------------------------------------
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _timestamp(value: Any) -> Any:
    """A datetime for every timestamp spelling agents send; anything else is returned unchanged
    so that validation reports it against the `timestamp` field."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, dict):  # Get-WinEvent with -Depth: {"value": "...", "DateTime": "..."}
        value = value.get("value") or value.get("DateTime") or value
    if not isinstance(value, str):
        return value
    text = value.strip()
    match = _MS_DATE.match(text)
    if match:  # PowerShell 5.1 ConvertTo-Json: /Date(1466611200000)/, milliseconds since 1970 UTC
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))
        except OverflowError:
            return value  # beyond year 9999: validation refuses it, naming the record
    if text.endswith(" UTC"):  # the evtx parser's record timestamp: "2016-06-29T15:24:34.346Z UTC"
        text = text[:-4]
    parsed = parse_datetime(text)
    if parsed is None:
        return value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: Any) -> Any:
    parsed = _timestamp(value)
    if isinstance(parsed, datetime):
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _int(value: Any) -> Any:
    """An int from an int or a decimal string; anything else unchanged (validation reports it)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


def _text(value: Any) -> Any:
    """The text of an XML-ish node: evtx prints {"#text": ..., "#attributes": ...}, xmltodict
    prints {"#text": ..., "@Attr": ...}."""
    if isinstance(value, dict):
        return value.get("#text", value.get("Value"))
    return value


def _attrs(node: Any) -> dict[str, Any]:
    """Attributes of an XML-ish node in either spelling (evtx `#attributes`, xmltodict `@`)."""
    if not isinstance(node, dict):
        return {}
    attrs = dict(node.get("#attributes") or {})
    attrs.update({key[1:]: value for key, value in node.items() if key.startswith("@")})
    return attrs


def _path(record: dict[str, Any], dotted: str) -> Any:
    """`record["a"]["b"]`, or `record["a.b"]` when a shipper flattened the keys."""
    if dotted in record:
        return record[dotted]
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _keywords_hex(value: Any) -> Any:
    """Get-WinEvent prints Keywords as a signed 64-bit integer; the evtx form is hex."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value & 0xFFFFFFFFFFFFFFFF:016x}"
    return value


def _first(record: dict[str, Any], names: tuple[str, ...]) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip() not in _BLANK:
            return value.strip()
    return ""


# Where a stored copy of a record says what the server did to it (never a Windows field name).
TRUNCATED_KEY = "_siem_truncated"
_COLUMN_LIMITS = {"user_name": 255, "source_ip": 64}


def _searchable(item: dict[str, Any], fields: dict[str, Any], *, keep: bool = False) -> None:
    """Set `user_name` and `source_ip` from the record's fields, cut to their columns' sizes.

    A longer value is never cut silently: the full value stays in `raw` (the record as sent)
    and `raw["_siem_truncated"]` names each cut column with the original length, so a hunt by
    the raw field (`TargetUserName:...`) still finds it and an analyst sees the column is short.
    With `keep`, values the caller already gave are left alone (API events).
    """
    cut: dict[str, int] = {}
    for column, names in (("user_name", _USER_FIELDS), ("source_ip", _IP_FIELDS)):
        if keep and column in item:
            continue
        value = _first(fields, names)
        limit = _COLUMN_LIMITS[column]
        if len(value) > limit:
            cut[column] = len(value)
        item[column] = value[:limit]
    raw = item.get("raw")
    if cut and isinstance(raw, dict):
        item["raw"] = {**raw, TRUNCATED_KEY: cut}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


# --- Shapes -------------------------------------------------------------------------------------
def detect_shape(record: Any) -> str:
    """`api`, `flat`, `get_winevent`, `evtx` or `winlogbeat` (see the module docstring)."""
    if not isinstance(record, dict):
        return "api"
    if isinstance(record.get("Event"), dict) and "System" in record["Event"]:
        return "evtx"
    if "System" in record and isinstance(record.get("System"), dict):
        return "evtx"
    if _path(record, "winlog.event_id") is not None or isinstance(record.get("winlog"), dict):
        return "winlogbeat"
    if "EventID" in record or "EventId" in record:
        return "flat"
    if "Id" in record and ("MachineName" in record or "ProviderName" in record):
        return "get_winevent"
    return "api"


def is_windows_record(record: Any) -> bool:
    return detect_shape(record) != "api"


def _value(node: Any) -> Any:
    """A data value: the text of an element with attributes, anything else as printed."""
    if isinstance(node, dict) and "#text" in node:
        return node["#text"]
    return node


def _flatten_data(section: Any, fields: dict[str, Any], prefix: str) -> None:
    """EventData / UserData into `fields`: named values by name, unnamed ones as Data1..N."""
    if not isinstance(section, dict):
        return
    for key, value in section.items():
        if key == "#attributes" or key.startswith("@"):
            continue
        if key == "Data":
            _flatten_unnamed(value, fields, prefix)
        elif prefix == "UserData_" and isinstance(value, dict) and "#text" not in value:
            # UserData wraps its values in one provider element: <LogFileCleared>...</...>
            for inner_key, inner_value in value.items():
                if inner_key != "#attributes" and not inner_key.startswith("@"):
                    _put(fields, inner_key, _value(inner_value), prefix)
        else:
            _put(fields, key, _value(value), prefix)


def _flatten_unnamed(data: Any, fields: dict[str, Any], prefix: str) -> None:
    if isinstance(data, dict) and "#text" in data:
        # evtx: unnamed <Data> elements print as {"Data": {"#text": [...]}}
        values = data["#text"] if isinstance(data["#text"], list) else [data["#text"]]
        for index, value in enumerate(values, start=1):
            _put(fields, f"Data{index}", value, prefix)
        return
    # xmltodict: {"Data": [{"@Name": "TargetUserName", "#text": "bob"}, ...]}
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items, start=1):
        name = _attrs(item).get("Name") if isinstance(item, dict) else None
        value = item.get("#text") if isinstance(item, dict) else item
        _put(fields, name or f"Data{index}", value, prefix)


def _put(fields: dict[str, Any], name: str, value: Any, prefix: str) -> None:
    # A data field never overwrites a System field of the same name (1108 has an EventID in
    # its UserData): it gets the section prefix instead, as in the JSON Lines export.
    fields[prefix + name if name in fields else name] = value


def _evtx_fields(record: dict[str, Any]) -> dict[str, Any]:
    event = record.get("Event", record)
    system = event.get("System") or {}
    provider = _attrs(system.get("Provider"))
    execution = _attrs(system.get("Execution"))
    security = _attrs(system.get("Security"))
    correlation = _attrs(system.get("Correlation"))
    fields = _drop_none(
        {
            "EventID": _int(_text(system.get("EventID"))),
            "Computer": _text(system.get("Computer")),
            "Channel": _text(system.get("Channel")),
            "Provider_Name": provider.get("Name"),
            "Provider_Guid": provider.get("Guid"),
            "TimeCreated": _iso(_attrs(system.get("TimeCreated")).get("SystemTime")),
            "EventRecordID": _int(_text(system.get("EventRecordID"))),
            "Level": _int(_text(system.get("Level"))),
            "Task": _int(_text(system.get("Task"))),
            "Opcode": _int(_text(system.get("Opcode"))),
            "Keywords": _text(system.get("Keywords")),
            "Version": _int(_text(system.get("Version"))),
            "ExecutionProcessID": _int(execution.get("ProcessID")),
            "ExecutionThreadID": _int(execution.get("ThreadID")),
            "Security_UserID": security.get("UserID"),
            "ActivityID": correlation.get("ActivityID"),
            "Qualifiers": _attrs(system.get("EventID")).get("Qualifiers") or None,
        }
    )
    _flatten_data(event.get("EventData"), fields, "EventData_")
    _flatten_data(event.get("UserData"), fields, "UserData_")
    rendering = event.get("RenderingInfo")
    if isinstance(rendering, dict) and rendering.get("Message"):
        fields["Message"] = _text(rendering["Message"])
    return fields


def _get_winevent_fields(record: dict[str, Any]) -> dict[str, Any]:
    code = _int(record.get("Id"))
    provider = str(record.get("ProviderName") or "")
    fields = _drop_none(
        {
            "EventID": code,
            "Computer": record.get("MachineName"),
            "Channel": record.get("LogName") or record.get("ContainerLog"),
            "Provider_Name": record.get("ProviderName"),
            "Provider_Guid": record.get("ProviderId"),
            "TimeCreated": _iso(record.get("TimeCreated")),
            "EventRecordID": _int(record.get("RecordId")),
            "Level": _int(record.get("Level")),
            "LevelDisplayName": record.get("LevelDisplayName"),
            "Task": _int(record.get("Task")),
            "Opcode": _int(record.get("Opcode")),
            "Keywords": _keywords_hex(record.get("Keywords")),
            "KeywordsDisplayNames": record.get("KeywordsDisplayNames"),
            "Version": _int(record.get("Version")),
            "ExecutionProcessID": _int(record.get("ProcessId")),
            "ExecutionThreadID": _int(record.get("ThreadId")),
            "Security_UserID": _text(record.get("UserId")),
            "Message": record.get("Message"),
        }
    )
    properties = record.get("Properties")
    if isinstance(properties, list):
        values = [_text(item) if isinstance(item, dict) else item for item in properties]
        values = [_text(value) if isinstance(value, dict) else value for value in values]
        names = _property_names(code, len(values), provider) or tuple(
            f"Param{index}" for index in range(1, len(values) + 1)
        )
        for name, value in zip(names, values, strict=True):
            _put(fields, name, value, "EventData_")
    return fields


def _winlogbeat_fields(record: dict[str, Any]) -> dict[str, Any]:
    level = _path(record, "log.level")
    fields = _drop_none(
        {
            "EventID": _int(_path(record, "winlog.event_id") or _path(record, "event.code")),
            "Computer": _path(record, "winlog.computer_name") or _path(record, "host.name"),
            "Channel": _path(record, "winlog.channel"),
            "Provider_Name": _path(record, "winlog.provider_name"),
            "Provider_Guid": _path(record, "winlog.provider_guid"),
            "TimeCreated": _iso(record.get("@timestamp")),
            "EventRecordID": _int(_path(record, "winlog.record_id")),
            "Level": LEVEL_NAMES.get(str(level).strip().lower()) if level else None,
            "LevelDisplayName": level,
            "Task": _path(record, "winlog.task"),
            "Opcode": _path(record, "winlog.opcode"),
            "KeywordsDisplayNames": _path(record, "winlog.keywords"),
            "Version": _int(_path(record, "winlog.version")),
            "ExecutionProcessID": _int(_path(record, "winlog.process.pid")),
            "ExecutionThreadID": _int(_path(record, "winlog.process.thread.id")),
            "Message": record.get("message"),
        }
    )
    for section, prefix in (("winlog.event_data", "EventData_"), ("winlog.user_data", "UserData_")):
        data = _path(record, section)
        if isinstance(data, dict):
            for key, value in data.items():
                _put(fields, key, value, prefix)
    return fields


def event_fields(raw: Any) -> dict[str, Any]:
    """The flat Windows field dict of a stored `raw` record, whatever shape the agent sent.

    System fields (`EventID`, `Computer`, `Channel`, `Provider_Name`, `TimeCreated` as ISO
    8601 UTC, `EventRecordID`, `Level`, `Keywords`, ...) merged with the EventData fields under
    their Windows names (`TargetUserName`, `IpAddress`, `LogonType`, ...). A data field whose
    name collides with a System field is kept as `EventData_<name>` / `UserData_<name>`.
    A record that is not Windows-shaped is returned as a shallow copy.
    """
    if not isinstance(raw, dict):
        return {}
    shape = detect_shape(raw)
    if shape == "evtx":
        return _evtx_fields(raw)
    if shape == "get_winevent":
        return _get_winevent_fields(raw)
    if shape == "winlogbeat":
        return _winlogbeat_fields(raw)
    fields = dict(raw)
    if shape == "flat" and "EventID" not in fields:
        fields["EventID"] = fields.get("EventId")
    return fields


# --- Severity and the event fields ---------------------------------------------------------------
def _level(fields: dict[str, Any]) -> int | None:
    level = fields.get("Level")
    if isinstance(level, int) and not isinstance(level, bool) and level in LEVEL_TO_SEVERITY:
        return level
    name = fields.get("LevelDisplayName")
    if isinstance(name, str):
        return LEVEL_NAMES.get(name.strip().lower())
    return None


def _is_audit_failure(fields: dict[str, Any]) -> bool:
    keywords = fields.get("Keywords")
    if isinstance(keywords, str):
        try:
            return bool(int(keywords, 16) & AUDIT_FAILURE_KEYWORD)
        except ValueError:
            return False
    names = fields.get("KeywordsDisplayNames")
    if isinstance(names, list):
        return any(str(name).strip().lower() == "audit failure" for name in names)
    return False


def windows_severity(fields: dict[str, Any]) -> int:
    """Severity 1–5 of a flat Windows record (the table in docs/ingestion.md)."""
    code = fields.get("EventID")
    severity = SEVERITY_BY_CODE.get(code) if isinstance(code, int) else None
    if severity is not None:
        return severity
    level = _level(fields)
    severity = LEVEL_TO_SEVERITY.get(level, 2) if level is not None else 2
    if _is_audit_failure(fields):
        severity = max(severity, AUDIT_FAILURE_MIN_SEVERITY)
    return severity


def _source_type(fields: dict[str, Any]) -> str:
    channel = str(fields.get("Channel") or "Security")
    return channel if channel.lower().startswith("windows") else f"Windows {channel}"


def _from_windows(record: dict[str, Any]) -> dict[str, Any]:
    fields = event_fields(record)
    code = fields.get("EventID")
    severity = windows_severity(fields)
    # The per-channel catalog (events/windows.py) names Sysmon, PowerShell, WMI and System ids
    # and rates them; Security codes keep the table above.
    described = describe(fields)
    if described is not None and described[1] is not None:
        channel = str(fields.get("Channel") or "").lower()
        if channel != "security" or code not in SEVERITY_BY_CODE:
            severity = described[1]
    message = fields.get("Message")
    if not isinstance(message, str) or not message.strip():
        if described is not None:
            message = described[0]
        else:
            message = MESSAGES_BY_CODE.get(code, f"Windows event {code}")
    item = {
        "timestamp": _timestamp(fields.get("TimeCreated")),
        "computer": fields.get("Computer") or "",
        "event_code": code,
        "severity": severity,
        "message": message,
        "source_type": _source_type(fields)[:100],
        "agent_record_id": fields.get("EventRecordID"),
        "raw": record,
    }
    _searchable(item, fields)
    if item["timestamp"] is None:
        del item["timestamp"]  # no event time recorded: the server's receive time stands in
    return item


def _from_api(record: dict[str, Any]) -> dict[str, Any]:
    item = dict(record)
    if "record_id" in item:
        item["agent_record_id"] = _int(item.pop("record_id"))
    if "timestamp" in item:
        item["timestamp"] = _timestamp(item["timestamp"])
    raw = item.get("raw")
    if isinstance(raw, dict) and ("user_name" not in item or "source_ip" not in item):
        # An API event carrying a Windows record in `raw`: take the searchable fields from it.
        _searchable(item, event_fields(raw), keep=True)
    return item


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    """Fields for `events.services.create_events` from one record (validation happens after).

    Windows shapes become `timestamp`, `computer`, `event_code`, `severity`, `message`,
    `source_type`, `user_name`, `source_ip`, `agent_record_id` and `raw` (the record as sent).
    Our flat API fields pass through, `record_id` renamed to `agent_record_id`.
    """
    if not isinstance(record, dict):
        return record
    if is_windows_record(record):
        return _from_windows(record)
    return _from_api(record)
