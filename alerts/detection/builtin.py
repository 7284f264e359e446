"""Built-in detection rules: the Windows patterns every SOC expects, written as Python.

Each rule names the event codes it reads, a predicate over the normalized `FieldView`, and the
key that identifies "the same thing happening again" (host, account, source...). A correlated
rule (`window`) also has a threshold and a window in event time; its key is the group whose
events are counted (or whose distinct `value`s are counted, for spraying).

Defaults come from settings (`DETECTION_*`) and can be overridden per rule in the admin
(`DetectionRule`). Choices, with the data behind them, are in docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from alerts.detection.fields import LOOPBACK, FieldView, remote_source
from events.windows import is_machine_account, is_privileged_group, replication_rights

Key = Callable[[FieldView], tuple[str, ...] | None]


@dataclass(frozen=True)
class BuiltinRule:
    rule_id: str
    title: str
    description: str
    severity: int
    category: str
    techniques: tuple[str, ...]
    event_ids: frozenset[int]
    match: Callable[[FieldView], bool]
    key: Key
    window: bool = False  # correlated: counts events of one key within a window
    value: Callable[[FieldView], str] | None = None  # counts distinct values instead
    # A sequence: the event code of each step, in order (the threshold is the first step's count,
    # every later step needs one event); the key's events must follow that order in the window.
    steps: tuple[int, ...] = ()
    # Sigma rules (ids) that detect the same thing on the same events whatever their ATT&CK tags
    # say (SigmaHQ retags rules to newer ATT&CK versions): folded into this rule's alerts.
    covers: frozenset[str] = frozenset()
    threshold_setting: str = ""
    window_setting: str = ""

    def default_threshold(self) -> int | None:
        return getattr(settings, self.threshold_setting) if self.threshold_setting else None

    def default_window(self) -> int | None:
        return getattr(settings, self.window_setting) if self.window_setting else None


def _host(view: FieldView) -> str:
    return view.first("computer")


def _is(view: FieldView, name: str, *values: str) -> bool:
    return any(v in values for v in view.get(name) or ())


_machine_account = is_machine_account


# --- brute force and spraying -----------------------------------------------------------------
def _brute_force_key(view: FieldView) -> tuple[str, ...]:
    # Events posted through the API may carry neither account nor address: "-" groups them by
    # host alone. Local console attempts have no address: the workstation is the next best source.
    account = view.first("targetusername") or "-"
    source = remote_source(view) or view.first("workstationname") or "-"
    return (_host(view), account, source)


# Kerberos TGT requests (4768) count only when they fail: 0x6 unknown principal, 0x12 revoked...
def _spray_candidate(view: FieldView) -> bool:
    if _is(view, "eventid", "4768"):
        status = view.first("status")
        return bool(status) and status not in ("0x0", "0")
    return True


def _spray_key(view: FieldView) -> tuple[str, ...] | None:
    source = remote_source(view)
    if not source or not view.first("targetusername"):
        return None
    return (source,)


# Accounts whose failures and logons are the system's own, never a person guessing a password.
_SYSTEM_ACCOUNTS = frozenset({"anonymous logon", "-", ""})
# Failure statuses that are not a wrong password (Elastic's prebuilt rule leaves out the first
# four): logon type not granted, no logon servers, clock skew, Netlogon not started; and the
# right password refused because it expired or must be changed (an administrator at the
# console of WIN-L0ZZQ76PMUF, benign log B: two 0xC0000224, then three typos, then a logon).
_NOT_GUESSES = frozenset(
    {"0xc000015b", "0xc000005e", "0xc0000133", "0xc0000192", "0xc0000224", "0xc0000071"}
)


def _failed_then_success_candidate(view: FieldView) -> bool:
    account = view.first("targetusername")
    if account in _SYSTEM_ACCOUNTS or _machine_account(account):
        return False
    if view.first("targetdomainname") in ("nt authority", "font driver host", "window manager"):
        return False
    if not _is(view, "eventid", "4625"):
        return True
    return view.first("status") not in _NOT_GUESSES and view.first("substatus") not in _NOT_GUESSES


def _failed_then_success_key(view: FieldView) -> tuple[str, ...] | None:
    account = view.first("targetusername")
    source = remote_source(view) or view.first("workstationname")
    if not account or not source:
        return None  # no account or source to tie the success to the failures
    return (_host(view), account, source)


# --- accounts and groups -----------------------------------------------------------------------
def _privileged_group(view: FieldView) -> bool:
    return is_privileged_group(view.first("targetsid"), view.first("targetusername"))


# --- directory replication, shares, credentials -------------------------------------------------
def _dcsync(view: FieldView) -> bool:
    if not replication_rights(" ".join(view.get("properties") or ())):
        return False
    subject = view.first("subjectusername")
    # Domain controllers replicate with their machine accounts; anyone else is an attacker.
    return bool(subject) and not _machine_account(subject)


def _admin_share(view: FieldView) -> bool:
    share = view.first("sharename")
    name = share.rsplit("\\", 1)[-1]
    if not (name == "admin$" or (len(name) == 2 and name[1] == "$" and name[0].isalpha())):
        return False
    subject = view.first("subjectusername")
    return bool(subject) and not _machine_account(subject)


def _explicit_remote(view: FieldView) -> bool:
    target = view.first("targetservername")
    if not target or target in LOOPBACK:
        return False
    host = _host(view)
    return target != host and target.split(".", 1)[0] != host.split(".", 1)[0]


def _pass_the_hash(view: FieldView) -> bool:
    logon_type = view.first("logontype")
    process = view.first("logonprocessname")
    if logon_type == "9" and process == "seclogo":
        return True  # sekurlsa::pth / runas /netonly: new credentials for outbound use
    if logon_type != "3" or view.first("authenticationpackagename") != "ntlm":
        return False
    if view.first("targetusername") in ("anonymous logon", "") or not remote_source(view):
        return False
    return view.first("keylength") == "0" and not _machine_account(view.first("targetusername"))


LSASS_ACCESS_MASKS = frozenset(
    {
        "0x1010",
        "0x1410",
        "0x1418",
        "0x1438",
        "0x143a",
        "0x1f0fff",
        "0x1f1fff",
        "0x1f2fff",
        "0x1f3fff",
        "0x1fffff",
        "0x40",
    }
)


def _lsass_access(view: FieldView) -> bool:
    channel = view.first("channel")
    if channel and "sysmon" not in channel:
        return False
    if not view.first("targetimage").endswith("\\lsass.exe"):
        return False
    return view.first("grantedaccess") in LSASS_ACCESS_MASKS


def _log_cleared(view: FieldView) -> bool:
    if _is(view, "eventid", "1102"):
        return True
    # System log cleared (104) is written by the Eventlog provider in the System channel.
    return "eventlog" in view.first("provider_name")


def _service_installed(view: FieldView) -> bool:
    return bool(view.first("servicename") or view.first("imagepath"))


def _by(*names: str) -> Key:
    def key(view: FieldView) -> tuple[str, ...]:
        return (_host(view), *(view.first(name) or "-" for name in names))

    return key


def _always(view: FieldView) -> bool:
    return True


BUILTIN_RULES: tuple[BuiltinRule, ...] = (
    BuiltinRule(
        rule_id="builtin.brute_force",
        title="Multiple failed login attempts",
        description="Failed logons (4625) for one account from one source reached the "
        "threshold within the window.",
        severity=4,
        category="brute_force",
        techniques=("T1110", "T1110.001"),
        event_ids=frozenset({4625}),
        match=_always,
        key=_brute_force_key,
        window=True,
        threshold_setting="DETECTION_BRUTE_FORCE_THRESHOLD",
        window_setting="DETECTION_BRUTE_FORCE_WINDOW_SEC",
    ),
    BuiltinRule(
        rule_id="builtin.password_spray",
        title="Password spraying from one source",
        description="One source failed to log on (4625, 4771, failed 4768) or used explicit "
        "credentials (4648) for many distinct accounts within the window.",
        severity=4,
        category="password_spray",
        techniques=("T1110", "T1110.003"),
        event_ids=frozenset({4625, 4648, 4768, 4771}),
        match=_spray_candidate,
        key=_spray_key,
        window=True,
        value=lambda view: view.first("targetusername"),
        threshold_setting="DETECTION_SPRAY_THRESHOLD",
        window_setting="DETECTION_SPRAY_WINDOW_SEC",
    ),
    BuiltinRule(
        rule_id="builtin.failed_then_success",
        title="Successful logon after repeated failures",
        description="Failed logons (4625) for one account from one source reached the "
        "threshold, then the account logged on (4624) from that source, all within the window: "
        "the password may have been guessed.",
        severity=4,
        category="brute_force",
        techniques=("T1110",),
        event_ids=frozenset({4625, 4624}),
        match=_failed_then_success_candidate,
        key=_failed_then_success_key,
        window=True,
        steps=(4625, 4624),
        threshold_setting="DETECTION_FAILED_THEN_SUCCESS_THRESHOLD",
        window_setting="DETECTION_FAILED_THEN_SUCCESS_WINDOW_SEC",
    ),
    BuiltinRule(
        rule_id="builtin.audit_log_cleared",
        title="Audit log cleared",
        description="The Security (1102) or System (104) event log was cleared.",
        severity=4,
        category="defense_evasion",
        techniques=("T1070.001",),
        event_ids=frozenset({1102, 104}),
        match=_log_cleared,
        key=_by("subjectusername"),
        # SigmaHQ tags these T1685.005 (ATT&CK v18) where this rule says T1070.001.
        covers=frozenset(
            {
                "sigma:d99b79d2-0a6f-4f46-ad8b-260b6e17f982",  # Security Eventlog Cleared
                "sigma:a122ac13-daf8-4175-83a2-72c387be339d",  # Security Event Log Cleared (old)
                "sigma:a62b37e0-45d3-48d9-a517-90c1a1b0186b",  # Eventlog Cleared (System 104)
                "sigma:100ef69e-3327-481c-8e5c-6d80d9507556",  # Important Windows Eventlog Cleared
            }
        ),
    ),
    BuiltinRule(
        rule_id="builtin.user_created",
        title="User account created",
        description="A user account was created (4720).",
        severity=3,
        category="persistence",
        techniques=("T1136",),
        event_ids=frozenset({4720}),
        match=_always,
        key=_by("targetusername"),
    ),
    BuiltinRule(
        rule_id="builtin.privileged_group_add",
        title="Member added to a privileged group",
        description="An account was added to an administrative group (4728, 4732, 4756).",
        severity=4,
        category="privilege_escalation",
        techniques=("T1098",),
        event_ids=frozenset({4728, 4732, 4756}),
        match=_privileged_group,
        key=_by("targetusername", "membersid"),
    ),
    BuiltinRule(
        rule_id="builtin.service_installed",
        title="Service installed",
        description="A new service was installed (7045, 4697).",
        severity=3,
        category="persistence",
        techniques=("T1543.003",),
        event_ids=frozenset({7045, 4697}),
        match=_service_installed,
        key=_by("servicename"),
    ),
    BuiltinRule(
        rule_id="builtin.dcsync",
        title="Directory replication requested by a non-DC account (DCSync)",
        description="4662 with a replication control-access right GUID, by an account that is "
        "not a domain controller's machine account.",
        severity=5,
        category="credential_access",
        techniques=("T1003.006",),
        event_ids=frozenset({4662}),
        match=_dcsync,
        key=_by("subjectusername"),
    ),
    BuiltinRule(
        rule_id="builtin.admin_share_access",
        title="Administrative share accessed",
        description="ADMIN$ or a drive share (C$) was accessed over the network by a user "
        "account (5140, 5145).",
        severity=3,
        category="lateral_movement",
        techniques=("T1021.002",),
        event_ids=frozenset({5140, 5145}),
        match=_admin_share,
        key=lambda view: (_host(view), view.first("subjectusername"), remote_source(view) or "-"),
    ),
    BuiltinRule(
        rule_id="builtin.explicit_credentials_remote",
        title="Explicit credentials used against a remote host",
        description="A process logged on with explicitly supplied credentials (4648) to "
        "another computer (runas, WMIC /user, PsExec -u).",
        severity=3,
        category="lateral_movement",
        techniques=("T1078", "T1021"),
        event_ids=frozenset({4648}),
        match=_explicit_remote,
        key=_by("subjectusername", "targetusername", "targetservername"),
    ),
    BuiltinRule(
        rule_id="builtin.pass_the_hash",
        title="Possible pass-the-hash logon",
        description="4624 logon type 9 by seclogo (sekurlsa::pth), or a remote NTLM logon of "
        "a user account without a session key.",
        severity=4,
        category="lateral_movement",
        techniques=("T1550.002",),
        event_ids=frozenset({4624}),
        match=_pass_the_hash,
        key=lambda view: (
            _host(view),
            view.first("targetusername"),
            remote_source(view) or "-",
        ),
    ),
    BuiltinRule(
        rule_id="builtin.lsass_access",
        title="LSASS memory accessed (credential dumping)",
        description="Sysmon 10: a process opened lsass.exe with rights used to read its memory.",
        severity=5,
        category="credential_access",
        techniques=("T1003.001",),
        event_ids=frozenset({10}),
        match=_lsass_access,
        key=_by("sourceimage"),
    ),
)

BUILTIN_BY_ID = {rule.rule_id: rule for rule in BUILTIN_RULES}
