"""The offline analyzer: what a SOC analyst knows about Windows Security events, as rules.

No network, no key: it scores each event from its event code and its Windows fields
(`TargetUserName`, `IpAddress`, `CommandLine`, `ServiceFileName`, ...) and, for failed logons,
from the recent failures of the same account or source already in the database. Scores follow
the LLM contract: 0 routine, ~50 suspicious, >70 likely malicious, >85 an attack in progress.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from events.ai.base import Analysis
from events.normalize import event_fields
from events.windows import (
    DOMAIN_ADMIN_GROUPS,
    failure_burst,
    is_machine_account,
    is_privileged_group,
    replication_rights,
)

# Privileged groups, DCSync rights and burst thresholds: events/windows.py, shared with the
# detection rules so the analyzer and the rules never disagree.
# Command-line patterns of attack tools and techniques: (regex, score, category, what it is).
COMMAND_PATTERNS: list[tuple[re.Pattern, int, str, str]] = [
    (
        re.compile(r"mimikatz|sekurlsa|lsadump::|kerberos::(ptt|golden)|privilege::debug", re.I),
        97,
        "credential_access",
        "Mimikatz credential theft",
    ),
    (
        re.compile(r"procdump[^|&]*lsass|comsvcs(\.dll)?[^|&]*minidump|sqldumper[^|&]*lsass", re.I),
        95,
        "credential_access",
        "a memory dump of LSASS (credential theft)",
    ),
    (re.compile(r"ntdsutil[^|&]*\bifm\b", re.I), 95, "credential_access", "a copy of NTDS.dit"),
    (
        re.compile(r"reg(\.exe)?\s+save\s+hklm\\(sam|system|security)", re.I),
        92,
        "credential_access",
        "an export of the SAM/SECURITY registry hives",
    ),
    (
        re.compile(
            r"vssadmin[^|&]*delete\s+shadows|wbadmin[^|&]*delete|"
            r"bcdedit[^|&]*recoveryenabled\s+no|shadowcopy\s+delete",
            re.I,
        ),
        92,
        "impact",
        "deletion of backups / shadow copies (ransomware preparation)",
    ),
    (re.compile(r"wevtutil(\.exe)?\s+(cl|clear-log)\b", re.I), 90, "defense_evasion", "log wiping"),
    (
        re.compile(r"powershell[^|&]*\s-(e|ec|enc|encodedcommand)\s+[a-z0-9+/=]{16,}", re.I),
        85,
        "execution",
        "an encoded PowerShell command",
    ),
    (
        re.compile(
            r"downloadstring|downloadfile|invoke-expression|\biex\s*\(|invoke-webrequest", re.I
        ),
        82,
        "execution",
        "PowerShell downloading and running code",
    ),
    (
        re.compile(r"certutil[^|&]*-(urlcache|decode)|bitsadmin[^|&]*/transfer", re.I),
        82,
        "execution",
        "a download with a living-off-the-land binary (certutil/bitsadmin)",
    ),
    (
        re.compile(r"net1?(\.exe)?\s+localgroup\s+\"?administrators\"?[^|&]*/add", re.I),
        85,
        "privilege_escalation",
        "a user added to local Administrators",
    ),
    (
        re.compile(r"net1?(\.exe)?\s+user\s+\S+\s+\S*\s*/add", re.I),
        78,
        "persistence",
        "a user account created from the command line",
    ),
    (
        re.compile(r"\b(ps|pa)exec(64)?(\.exe)?\b|psexesvc", re.I),
        80,
        "lateral_movement",
        "PsExec remote execution",
    ),
    (
        re.compile(r"wmic[^|&]*process\s+call\s+create", re.I),
        75,
        "lateral_movement",
        "remote process creation through WMI",
    ),
    (
        re.compile(r"rundll32[^|&]*javascript:|mshta[^|&]*(http|javascript|vbscript)", re.I),
        85,
        "defense_evasion",
        "script execution through rundll32/mshta",
    ),
    (re.compile(r"schtasks[^|&]*/create", re.I), 60, "persistence", "a scheduled task created"),
    (
        re.compile(
            r"net1?(\.exe)?\s+group\s+\"?domain admins|nltest[^|&]*/dclist|"
            r"whoami\s+/(priv|groups|all)|adfind",
            re.I,
        ),
        45,
        "discovery",
        "domain/privilege discovery",
    ),
]
_SUSPICIOUS_SERVICE = re.compile(
    r"psexesvc|\\admin\$|%comspec%|cmd(\.exe)?\s*/[ck]|powershell|rundll32|mshta|"
    r"\\temp\\|\\appdata\\|\\users\\public\\|\\programdata\\[^\\]+\.exe",
    re.I,
)
_LSASS_ACCESS_MASKS = {"0x1010", "0x1410", "0x1438", "0x143a", "0x1fffff", "0x40"}
_NO_USER = {"", "-"}


def _field(raw: dict[str, Any], *names: str) -> str:
    """The first non-empty field among `names`, matched case-insensitively (ProcessId/ProcessID)."""
    lowered = {key.lower(): value for key, value in raw.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value not in (None, ""):
            return str(value).strip()
    return ""


class BuiltinAnalyzer:
    name = "builtin"

    def describe(self) -> str:
        return "builtin (offline rules for Windows Security events, no network)"

    def analyze(self, events: Sequence) -> dict[int, Analysis]:
        return {event.event_id: self.analyze_one(event) for event in events}

    def analyze_one(self, event) -> Analysis:
        raw = event_fields(event.raw)
        rule = RULES.get((_is_sysmon(event, raw), event.event_code))
        if rule is None:
            rule = RULES.get((False, event.event_code))
        if rule is not None:
            result = rule(event, raw)
            if result is not None:
                return result
        return _by_severity(event)


def _is_sysmon(event, raw: dict[str, Any]) -> bool:
    origin = f"{event.source_type} {raw.get('Channel', '')} {raw.get('Provider_Name', '')}"
    return "sysmon" in origin.lower()


def _by_severity(event) -> Analysis:
    score = {1: 5, 2: 15, 3: 35, 4: 55, 5: 70}.get(event.severity, 20)
    return Analysis(
        score=score,
        category="benign" if score < 30 else "unknown",
        description=(
            f"No specific knowledge about event {event.event_code}; "
            f"scored from its severity ({event.severity})."
        ),
    )


def _who(raw: dict[str, Any], *names: str) -> str:
    value = _field(raw, *names)
    return value if value not in _NO_USER else "an unknown account"


# --- rules, one per event code -----------------------------------------------------------------
def _log_cleared(event, raw) -> Analysis:
    who = _who(raw, "SubjectUserName")
    return Analysis(
        90,
        "defense_evasion",
        f"The Security audit log on {event.computer} was cleared by {who}: attackers clear "
        "logs to hide what they did.",
    )


def _system_log_cleared(event, raw) -> Analysis:
    return Analysis(
        80,
        "defense_evasion",
        f"An event log on {event.computer} was cleared by {_who(raw, 'SubjectUserName')}.",
    )


def _user_created(event, raw) -> Analysis:
    target = _who(raw, "TargetUserName", "SamAccountName")
    creator = _who(raw, "SubjectUserName")
    if target.endswith("$"):
        return Analysis(
            90,
            "persistence",
            f"Account {target!r} was created by {creator} on {event.computer}; a user name "
            "ending in $ hides it among computer accounts (backdoor).",
        )
    return Analysis(
        60,
        "persistence",
        f"User account {target!r} was created by {creator} on {event.computer}; verify it was "
        "requested.",
    )


def _group_member_added(event, raw) -> Analysis:
    group = _field(raw, "TargetUserName", "GroupName") or "a group"
    member = _field(raw, "MemberName", "MemberSid")
    member = member if member not in _NO_USER else _field(raw, "MemberSid") or "an account"
    who = _who(raw, "SubjectUserName")
    by_system = who.endswith("$") or _field(raw, "SubjectUserSid") == "S-1-5-18"
    privileged = is_privileged_group(_field(raw, "TargetSid"), group)
    if privileged and by_system:
        # Setup, Group Policy or LAPS-like tooling act as the computer itself; still worth a look.
        return Analysis(
            60,
            "privilege_escalation",
            f"{member} was added to the privileged group {group!r} by the system ({who}) on "
            f"{event.computer}; expected during setup or from Group Policy, otherwise review.",
        )
    if group.lower() in DOMAIN_ADMIN_GROUPS:
        return Analysis(
            90,
            "privilege_escalation",
            f"{member} was added to the domain-wide group {group!r} by {who} on "
            f"{event.computer}: full control of the domain.",
        )
    if privileged:
        return Analysis(
            78,
            "privilege_escalation",
            f"{member} was added to the privileged group {group!r} by {who} on {event.computer}.",
        )
    return Analysis(
        35,
        "account_change",
        f"{member} was added to group {group!r} by {who} on {event.computer}.",
    )


def _failure_burst(event, raw, code: int, label: str) -> Analysis:
    """Failed logons: one is noise, many for one account or from one source is an attack."""
    user = event.user_name or _field(raw, "TargetUserName")
    source = event.source_ip or _field(raw, "IpAddress")
    user = "" if user in _NO_USER else user
    source = "" if source in _NO_USER else source
    when = event.timestamp or timezone.now()
    from events.models import SecurityEvent

    # The detection rules' numbers (events/windows.py): the analyzer calls a burst what the
    # brute-force and spraying rules alert on, never a different threshold.
    policy = failure_burst()
    window = timedelta(seconds=policy.window_seconds)
    recent = SecurityEvent.objects.filter(
        event_code=code, timestamp__gte=when - window, timestamp__lte=when
    )
    by_user = recent.filter(user_name=user).count() if user else 0
    by_source = recent.filter(source_ip=source).count() if source else 0
    spray_window = timedelta(seconds=policy.spray_window_seconds)
    accounts = (
        SecurityEvent.objects.filter(
            event_code=code,
            timestamp__gte=when - spray_window,
            timestamp__lte=when,
            source_ip=source,
        )
        .exclude(user_name="")
        .values("user_name")
        .distinct()
        .count()
        if source
        else 0
    )
    minutes = max(1, round(policy.window_seconds / 60))
    if accounts >= policy.spray_accounts:
        return Analysis(
            88,
            "brute_force",
            f"Password spraying: {accounts} different accounts failed from {source} within "
            f"{round(policy.spray_window_seconds / 60)} minutes.",
        )
    burst = max(by_user, by_source)
    subject = f"account {user!r}" if by_user >= by_source else f"source {source}"
    if burst >= 2 * policy.threshold:
        score = 92
    elif burst >= policy.threshold:
        score = 82
    elif 2 * burst >= policy.threshold:
        score = 65
    else:
        status = _field(raw, "Status", "FailureCode").lower()
        unknown_user = _field(raw, "SubStatus").lower() == "0xc0000064"
        return Analysis(
            35 if unknown_user else 25,
            "authentication",
            f"A single {label} for {user or 'an account'}"
            + (f" from {source}" if source else "")
            + (" (unknown user name)" if unknown_user else "")
            + (f", status {status}" if status and not unknown_user else "")
            + "; no burst so far.",
        )
    return Analysis(
        score,
        "brute_force",
        f"{burst} {label}s for {subject} within {minutes} minutes on {event.computer}: "
        "a password guessing attack.",
    )


def _failed_logon(event, raw) -> Analysis:
    return _failure_burst(event, raw, 4625, "failed logon")


def _kerberos_preauth_failed(event, raw) -> Analysis:
    return _failure_burst(event, raw, 4771, "Kerberos pre-authentication failure")


def _command_line(event, raw) -> Analysis | None:
    command = _field(raw, "CommandLine")
    image = _field(raw, "NewProcessName", "Image")
    text = f"{image} {command}"
    for pattern, score, category, what in COMMAND_PATTERNS:
        if pattern.search(text):
            shown = command or image
            return Analysis(
                score,
                category,
                f"Process on {event.computer} by {_who(raw, 'SubjectUserName', 'User')} looks "
                f"like {what}: {shown[:300]}",
            )
    if not text.strip():
        return None
    return Analysis(
        10,
        "benign",
        f"Process {image or command[:100]} started on {event.computer}; nothing known-bad in "
        "its command line.",
    )


def _service_installed(event, raw) -> Analysis:
    name = _field(raw, "ServiceName") or "a service"
    path = _field(raw, "ServiceFileName", "ImagePath")
    if _SUSPICIOUS_SERVICE.search(path) or _SUSPICIOUS_SERVICE.search(name):
        return Analysis(
            86,
            "lateral_movement",
            f"Service {name!r} installed on {event.computer} runs {path[:200]!r}: the pattern "
            "of remote execution tools (PsExec, Impacket, Metasploit).",
        )
    return Analysis(
        45,
        "persistence",
        f"Service {name!r} was installed on {event.computer} ({path[:200] or 'no path'}); "
        "confirm it is expected software.",
    )


def _directory_access(event, raw) -> Analysis:
    properties = _field(raw, "Properties").lower()
    rights = replication_rights(properties)
    who = _who(raw, "SubjectUserName")
    if rights and not is_machine_account(who):
        return Analysis(
            95,
            "credential_access",
            f"DCSync: {who} used directory replication rights ({', '.join(rights)}) on "
            f"{event.computer}, which only domain controllers need; password hashes of the "
            "domain can be read this way.",
        )
    if rights:
        return Analysis(
            10,
            "benign",
            f"Directory replication by computer account {who} on {event.computer}.",
        )
    return Analysis(15, "benign", f"Directory object access by {who} on {event.computer}.")


def _explicit_credentials(event, raw) -> Analysis:
    subject = _who(raw, "SubjectUserName")
    target = _who(raw, "TargetUserName")
    server = _field(raw, "TargetServerName")
    process = _field(raw, "ProcessName")
    remote = server and server.lower() not in {"localhost", "-", event.computer.lower()}
    score = 50 if remote else 30
    if subject.endswith("$") and not remote:
        score = 10
    return Analysis(
        score,
        "lateral_movement" if remote else "authentication",
        f"{subject} used the explicit credentials of {target}"
        + (f" to reach {server}" if remote else "")
        + (f" via {process}" if process and process != "-" else "")
        + f" on {event.computer}; typical of runas and of lateral movement.",
    )


def _logon(event, raw) -> Analysis:
    logon_type = _field(raw, "LogonType")
    process = _field(raw, "LogonProcessName").lower()
    user = _who(raw, "TargetUserName")
    if logon_type == "9" and process.startswith("seclogo"):
        return Analysis(
            82,
            "credential_access",
            f"NewCredentials logon (type 9, seclogo) for {user} on {event.computer}: the "
            "signature of pass-the-hash / overpass-the-hash (sekurlsa::pth).",
        )
    if logon_type == "10":
        return Analysis(30, "remote_access", f"Remote Desktop logon of {user} on {event.computer}.")
    return Analysis(5, "benign", f"Logon of {user} on {event.computer} (type {logon_type or '?'}).")


def _scheduled_task(event, raw) -> Analysis:
    name = _field(raw, "TaskName") or "a task"
    content = _field(raw, "TaskContent")
    if re.search(r"powershell|cmd(\.exe)?\s*/c|rundll32|mshta|regsvr32|\\temp\\", content, re.I):
        return Analysis(
            80,
            "persistence",
            f"Scheduled task {name!r} created on {event.computer} by "
            f"{_who(raw, 'SubjectUserName')} runs a script interpreter.",
        )
    return Analysis(
        50,
        "persistence",
        f"Scheduled task {name!r} created on {event.computer} by {_who(raw, 'SubjectUserName')}.",
    )


def _share_access(event, raw) -> Analysis:
    share = _field(raw, "ShareName")
    target = _field(raw, "RelativeTargetName")
    source = _field(raw, "IpAddress")
    if re.search(r"psexesvc|svcctl|atsvc|\.exe$", target, re.I) or re.search(
        r"\\(admin|c)\$$", share, re.I
    ):
        return Analysis(
            72,
            "lateral_movement",
            f"Administrative share access {share}\\{target} on {event.computer} from "
            f"{source or 'a remote host'}: how PsExec-like tools push and start code.",
        )
    return Analysis(10, "benign", f"Network share {share or '?'} accessed on {event.computer}.")


def _kerberos_ticket(event, raw) -> Analysis:
    encryption = _field(raw, "TicketEncryptionType").lower()
    service = _field(raw, "ServiceName")
    if encryption == "0x17" and service and not service.endswith("$") and service != "krbtgt":
        return Analysis(
            72,
            "credential_access",
            f"RC4 service ticket for {service} requested on {event.computer}: the pattern of "
            "Kerberoasting.",
        )
    return Analysis(5, "benign", f"Kerberos service ticket for {service or '?'}.")


def _lockout(event, raw) -> Analysis:
    return Analysis(
        55,
        "brute_force",
        f"Account {_who(raw, 'TargetUserName')} was locked out on {event.computer} after "
        "repeated failed logons.",
    )


def _lsass_access(event, raw) -> Analysis | None:
    target = _field(raw, "TargetImage").lower()
    access = _field(raw, "GrantedAccess").lower()
    if target.endswith("lsass.exe") and access in _LSASS_ACCESS_MASKS:
        return Analysis(
            92,
            "credential_access",
            f"{_field(raw, 'SourceImage') or 'A process'} opened LSASS on {event.computer} with "
            f"access {access}: credential dumping.",
        )
    return None


Rule = Callable[[Any, dict[str, Any]], Analysis | None]
# Keyed by (is Sysmon, event code): Sysmon reuses small numbers that mean other things elsewhere.
RULES: dict[tuple[bool, int], Rule] = {
    (False, 1102): _log_cleared,
    (False, 104): _system_log_cleared,
    (False, 4720): _user_created,
    (False, 4728): _group_member_added,
    (False, 4732): _group_member_added,
    (False, 4756): _group_member_added,
    (False, 4625): _failed_logon,
    (False, 4771): _kerberos_preauth_failed,
    (False, 4688): _command_line,
    (False, 7045): _service_installed,
    (False, 4697): _service_installed,
    (False, 4662): _directory_access,
    (False, 4648): _explicit_credentials,
    (False, 4624): _logon,
    (False, 4698): _scheduled_task,
    (False, 5145): _share_access,
    (False, 4769): _kerberos_ticket,
    (False, 4740): _lockout,
    (True, 1): _command_line,
    (True, 10): _lsass_access,
    # Some agents ship Sysmon records under the default source type.
    (False, 10): _lsass_access,
}
