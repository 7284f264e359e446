"""Windows knowledge in one place: what events mean, which groups are privileged, what DCSync is.

Read by ingestion (message and severity of every stored event, `events.normalize`), by the
detection rules (`alerts.detection.builtin`) and by the offline analyzer
(`events.ai.builtin`), so the three never disagree (issue 13, item 8). Thresholds of failed-
logon bursts are settings (`DETECTION_BRUTE_FORCE_*`, `DETECTION_SPRAY_*`), read by both the
rules and the analyzer through `failure_burst()`.

The per-channel catalog gives each event id its Windows name (Sysmon's task names, the
PowerShell and WMI-Activity event titles) and a severity 1–5, and builds a one-line message
from the fields that matter (the image and command line of a Sysmon 1, the script block of a
4104), instead of "Windows event 10".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYSMON = "microsoft-windows-sysmon/operational"
POWERSHELL = "microsoft-windows-powershell/operational"
POWERSHELL_CORE = "powershellcore/operational"
POWERSHELL_CLASSIC = "windows powershell"
WMI_ACTIVITY = "microsoft-windows-wmi-activity/operational"
SYSTEM = "system"
SECURITY = "security"


@dataclass(frozen=True)
class EventKind:
    title: str
    severity: int | None  # None: from the record's Windows level
    detail: str = ""  # str.format template over the record's fields ("" when a field is absent)


# Sysmon: task names as Sysmon writes them; severity by what an analyst makes of the kind.
SYSMON_EVENTS = {
    1: EventKind("Process created", 2, "{Image} {CommandLine}"),
    2: EventKind("A process changed a file creation time", 3, "{Image} → {TargetFilename}"),
    3: EventKind("Network connection detected", 2, "{Image} → {DestinationIp}:{DestinationPort}"),
    4: EventKind("Sysmon service state changed", 3, "{State}"),
    5: EventKind("Process terminated", 1, "{Image}"),
    6: EventKind("Driver loaded", 3, "{ImageLoaded} (signed: {Signed})"),
    7: EventKind("Image loaded", 1, "{ImageLoaded} by {Image}"),
    8: EventKind("CreateRemoteThread detected", 4, "{SourceImage} → {TargetImage}"),
    9: EventKind("RawAccessRead detected", 3, "{Image} → {Device}"),
    10: EventKind("Process accessed", 3, "{SourceImage} → {TargetImage} ({GrantedAccess})"),
    11: EventKind("File created", 2, "{TargetFilename} by {Image}"),
    12: EventKind("Registry object added or deleted", 2, "{EventType} {TargetObject}"),
    13: EventKind("Registry value set", 2, "{TargetObject} = {Details}"),
    14: EventKind("Registry object renamed", 2, "{TargetObject} → {NewName}"),
    15: EventKind("File stream created", 2, "{TargetFilename} by {Image}"),
    16: EventKind("Sysmon config state changed", 3, "{ConfigurationFileHash}"),
    17: EventKind("Pipe created", 2, "{PipeName} by {Image}"),
    18: EventKind("Pipe connected", 2, "{PipeName} by {Image}"),
    19: EventKind("WmiEventFilter activity detected", 4, "{Operation} {Name}: {Query}"),
    20: EventKind("WmiEventConsumer activity detected", 4, "{Operation} {Name}: {Destination}"),
    21: EventKind(
        "WmiEventConsumerToFilter activity detected", 4, "{Operation} {Consumer} → {Filter}"
    ),
    22: EventKind("DNS query", 1, "{QueryName} by {Image}"),
    23: EventKind("File deleted (archived)", 2, "{TargetFilename} by {Image}"),
    24: EventKind("Clipboard changed", 2, "{Image}"),
    25: EventKind("Process tampering", 4, "{Image} ({Type})"),
    26: EventKind("File deleted", 2, "{TargetFilename} by {Image}"),
    27: EventKind("File block executable", 3, "{TargetFilename} by {Image}"),
    28: EventKind("File block shredding", 3, "{TargetFilename} by {Image}"),
    29: EventKind("File executable detected", 2, "{TargetFilename} by {Image}"),
    255: EventKind("Sysmon error", 3, "{Description}"),
}
# PowerShell 4104 is written at level Warning when PowerShell itself finds the block suspicious:
# its severity follows the level (3) instead of a fixed number.
POWERSHELL_EVENTS = {
    4100: EventKind("PowerShell error", None, "{Payload}"),
    4103: EventKind("PowerShell pipeline executed (module logging)", 2, "{Payload}"),
    4104: EventKind("PowerShell script block logged", None, "{ScriptBlockText}"),
    40961: EventKind("PowerShell console is starting up", 1),
    40962: EventKind("PowerShell console is ready for user input", 1),
    53504: EventKind("PowerShell named pipe IPC listening", 1, "{param2}"),
}
POWERSHELL_CLASSIC_EVENTS = {
    400: EventKind("PowerShell engine started", 2, "{HostApplication}"),
    403: EventKind("PowerShell engine stopped", 1, "{HostApplication}"),
    600: EventKind("PowerShell provider started", 1, "{ProviderName}"),
    800: EventKind("PowerShell pipeline executed", 2, "{HostApplication}"),
}
WMI_EVENTS = {
    5857: EventKind("WMI provider started", 1, "{ProviderName} ({ProviderPath})"),
    5858: EventKind("WMI client operation failed", 2, "{Operation}"),
    5859: EventKind("WMI event filter registered (intrinsic)", 3, "{Query}"),
    5860: EventKind("WMI temporary event consumer registered", 3, "{Query}"),
    # A permanent consumer bound to a filter runs code on a trigger: WMI persistence.
    5861: EventKind("WMI permanent event consumer bound to a filter", 4, "{CONSUMER} {ESS}"),
}
SYSTEM_EVENTS = {
    104: EventKind("An event log was cleared", 5, "{Channel} by {SubjectUserName}"),
    1074: EventKind("A shutdown or restart was initiated", 1, "{param1}"),
    5805: EventKind("Netlogon session setup failed", 3, "{ComputerName}"),
    6005: EventKind("The event log service was started", 1),
    6006: EventKind("The event log service was stopped", 2),
    6008: EventKind("The previous system shutdown was unexpected", 3),
    7034: EventKind("A service terminated unexpectedly", 3, "{param1}"),
    7036: EventKind("A service entered a new state", 1, "{param1}: {param2}"),
    7040: EventKind("A service's start type was changed", 2, "{param1}: {param2} → {param3}"),
    7045: EventKind("A service was installed in the system", 4, "{ServiceName}: {ImagePath}"),
    10016: EventKind("DCOM permission denied", 1, "{param4}"),
}
SECURITY_DETAILS = {
    4688: EventKind("A new process has been created", None, "{NewProcessName} {CommandLine}"),
}
CATALOG: dict[str, dict[int, EventKind]] = {
    SYSMON: SYSMON_EVENTS,
    POWERSHELL: POWERSHELL_EVENTS,
    POWERSHELL_CORE: POWERSHELL_EVENTS,
    POWERSHELL_CLASSIC: POWERSHELL_CLASSIC_EVENTS,
    WMI_ACTIVITY: WMI_EVENTS,
    SYSTEM: SYSTEM_EVENTS,
    SECURITY: SECURITY_DETAILS,
}
MESSAGE_MAX = 500


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def describe(fields: dict[str, Any]) -> tuple[str, int | None] | None:
    """(message, severity or None) of a flat Windows record from the catalog, or None."""
    channel = str(fields.get("Channel") or "").lower()
    code = fields.get("EventID")
    kind = CATALOG.get(channel, {}).get(code) if isinstance(code, int) else None
    if kind is None:
        return None
    detail = ""
    if kind.detail:
        values = _Blank(
            {k: " ".join(str(v).split()) for k, v in fields.items() if v not in (None, "", "-")}
        )
        detail = kind.detail.format_map(values).replace("()", "").strip(" →:=")
    message = f"{kind.title}: {detail}" if detail.strip() else kind.title
    return message[:MESSAGE_MAX], kind.severity


# --- accounts and groups ------------------------------------------------------------------------
# Well-known SIDs of built-in groups whose members hold administrative power.
PRIVILEGED_GROUP_SIDS = frozenset(
    {
        "s-1-5-32-544",  # Administrators
        "s-1-5-32-548",  # Account Operators
        "s-1-5-32-549",  # Server Operators
        "s-1-5-32-550",  # Print Operators
        "s-1-5-32-551",  # Backup Operators
        "s-1-5-32-555",  # Remote Desktop Users
        "s-1-5-32-580",  # Remote Management Users
        "s-1-5-32-578",  # Hyper-V Administrators
    }
)
# Domain RIDs: Domain Admins, Schema Admins, Enterprise Admins, Group Policy Creator Owners,
# Key Admins, Enterprise Key Admins.
PRIVILEGED_DOMAIN_RIDS = ("-512", "-518", "-519", "-520", "-526", "-527")
PRIVILEGED_GROUP_NAMES = frozenset(
    {
        "administrators",
        "domain admins",
        "enterprise admins",
        "schema admins",
        "account operators",
        "server operators",
        "backup operators",
        "print operators",
        "remote desktop users",
        "remote management users",
        "hyper-v administrators",
        "dnsadmins",
        "group policy creator owners",
        "key admins",
        "enterprise key admins",
    }
)
DOMAIN_ADMIN_GROUPS = frozenset({"domain admins", "enterprise admins", "schema admins"})


def is_privileged_group(sid: str, name: str) -> bool:
    """Whether a group (SID and/or name, any case) grants administrative power."""
    sid, name = (sid or "").lower(), (name or "").lower()
    if sid in PRIVILEGED_GROUP_SIDS:
        return True
    if sid.startswith("s-1-5-21-") and sid.endswith(PRIVILEGED_DOMAIN_RIDS):
        return True
    return name in PRIVILEGED_GROUP_NAMES


# Directory replication control-access rights: requesting them from a non-DC account is DCSync.
REPLICATION_RIGHTS = {
    "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2": "DS-Replication-Get-Changes",
    "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2": "DS-Replication-Get-Changes-All",
    "89e95b76-444d-4c62-991a-0facbeda640c": "DS-Replication-Get-Changes-In-Filtered-Set",
}


def replication_rights(properties: str) -> list[str]:
    """Names of the replication rights a 4662's Properties mention (any case)."""
    text = (properties or "").lower()
    return [name for guid, name in REPLICATION_RIGHTS.items() if guid in text]


def is_machine_account(name: str) -> bool:
    return (name or "").endswith("$")


# --- failed-logon bursts -----------------------------------------------------------------------
@dataclass(frozen=True)
class BurstPolicy:
    """When failed logons become an attack: the detection rules' numbers (settings)."""

    threshold: int  # failures for one account from one source within the window
    window_seconds: int
    spray_accounts: int  # distinct accounts from one source within spray_window_seconds
    spray_window_seconds: int


def failure_burst() -> BurstPolicy:
    from django.conf import settings

    return BurstPolicy(
        settings.DETECTION_BRUTE_FORCE_THRESHOLD,
        settings.DETECTION_BRUTE_FORCE_WINDOW_SEC,
        settings.DETECTION_SPRAY_THRESHOLD,
        settings.DETECTION_SPRAY_WINDOW_SEC,
    )
