"""MITRE ATT&CK: technique id → name and tactic, for the techniques our rules reference.

Covers the built-in rules and the Sigma rules shipped in ../shared/data (Windows security).
Any other `attack.tNNNN` tag is still shown, named honestly as not in this table. The tactic is
the technique's first (primary) tactic in ATT&CK; a sub-technique's name is "Parent: Sub", as
ATT&CK writes it.
"""

from __future__ import annotations

import re

_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")

# id: (name, tactic)
TECHNIQUES: dict[str, tuple[str, str]] = {
    "T1001": ("Data Obfuscation", "Command and Control"),
    "T1001.003": ("Protocol or Service Impersonation", "Command and Control"),
    "T1003": ("OS Credential Dumping", "Credential Access"),
    "T1003.001": ("LSASS Memory", "Credential Access"),
    "T1003.002": ("Security Account Manager", "Credential Access"),
    "T1003.003": ("NTDS", "Credential Access"),
    "T1003.004": ("LSA Secrets", "Credential Access"),
    "T1003.005": ("Cached Domain Credentials", "Credential Access"),
    "T1003.006": ("DCSync", "Credential Access"),
    "T1010": ("Application Window Discovery", "Discovery"),
    "T1012": ("Query Registry", "Discovery"),
    "T1021": ("Remote Services", "Lateral Movement"),
    "T1021.001": ("Remote Desktop Protocol", "Lateral Movement"),
    "T1021.002": ("SMB/Windows Admin Shares", "Lateral Movement"),
    "T1021.003": ("Distributed Component Object Model", "Lateral Movement"),
    "T1027": ("Obfuscated Files or Information", "Defense Evasion"),
    "T1027.001": ("Binary Padding", "Defense Evasion"),
    "T1027.005": ("Indicator Removal from Tools", "Defense Evasion"),
    "T1036": ("Masquerading", "Defense Evasion"),
    "T1039": ("Data from Network Shared Drive", "Collection"),
    "T1040": ("Network Sniffing", "Credential Access"),
    "T1047": ("Windows Management Instrumentation", "Execution"),
    "T1048": ("Exfiltration Over Alternative Protocol", "Exfiltration"),
    "T1053": ("Scheduled Task/Job", "Execution"),
    "T1053.002": ("At", "Execution"),
    "T1053.005": ("Scheduled Task", "Execution"),
    "T1059": ("Command and Scripting Interpreter", "Execution"),
    "T1059.001": ("PowerShell", "Execution"),
    "T1069": ("Permission Groups Discovery", "Discovery"),
    "T1069.002": ("Domain Groups", "Discovery"),
    "T1070": ("Indicator Removal", "Defense Evasion"),
    "T1070.001": ("Clear Windows Event Logs", "Defense Evasion"),
    "T1070.004": ("File Deletion", "Defense Evasion"),
    "T1070.006": ("Timestomp", "Defense Evasion"),
    "T1077": ("Windows Admin Shares (deprecated, now T1021.002)", "Lateral Movement"),
    "T1078": ("Valid Accounts", "Defense Evasion"),
    "T1078.001": ("Default Accounts", "Defense Evasion"),
    "T1078.002": ("Domain Accounts", "Defense Evasion"),
    "T1078.003": ("Local Accounts", "Defense Evasion"),
    "T1087": ("Account Discovery", "Discovery"),
    "T1087.002": ("Domain Account", "Discovery"),
    "T1090": ("Proxy", "Command and Control"),
    "T1090.001": ("Internal Proxy", "Command and Control"),
    "T1090.002": ("External Proxy", "Command and Control"),
    "T1091": ("Replication Through Removable Media", "Lateral Movement"),
    "T1098": ("Account Manipulation", "Persistence"),
    "T1105": ("Ingress Tool Transfer", "Command and Control"),
    "T1110": ("Brute Force", "Credential Access"),
    "T1110.001": ("Password Guessing", "Credential Access"),
    "T1110.003": ("Password Spraying", "Credential Access"),
    "T1112": ("Modify Registry", "Defense Evasion"),
    "T1114": ("Email Collection", "Collection"),
    "T1123": ("Audio Capture", "Collection"),
    "T1133": ("External Remote Services", "Persistence"),
    "T1134": ("Access Token Manipulation", "Defense Evasion"),
    "T1134.001": ("Token Impersonation/Theft", "Defense Evasion"),
    "T1134.002": ("Create Process with Token", "Defense Evasion"),
    "T1134.003": ("Make and Impersonate Token", "Defense Evasion"),
    "T1134.005": ("SID-History Injection", "Defense Evasion"),
    "T1136": ("Create Account", "Persistence"),
    "T1136.001": ("Local Account", "Persistence"),
    "T1136.002": ("Domain Account", "Persistence"),
    "T1187": ("Forced Authentication", "Credential Access"),
    "T1190": ("Exploit Public-Facing Application", "Initial Access"),
    "T1200": ("Hardware Additions", "Initial Access"),
    "T1201": ("Password Policy Discovery", "Discovery"),
    "T1207": ("Rogue Domain Controller", "Defense Evasion"),
    "T1212": ("Exploitation for Credential Access", "Credential Access"),
    "T1222": ("File and Directory Permissions Modification", "Defense Evasion"),
    "T1222.001": ("Windows File and Directory Permissions Modification", "Defense Evasion"),
    "T1484": ("Domain or Tenant Policy Modification", "Defense Evasion"),
    "T1484.001": ("Group Policy Modification", "Defense Evasion"),
    "T1485": ("Data Destruction", "Impact"),
    "T1528": ("Steal Application Access Token", "Credential Access"),
    "T1531": ("Account Access Removal", "Impact"),
    "T1543": ("Create or Modify System Process", "Persistence"),
    "T1543.003": ("Windows Service", "Persistence"),
    "T1546": ("Event Triggered Execution", "Persistence"),
    "T1546.003": ("Windows Management Instrumentation Event Subscription", "Persistence"),
    "T1547": ("Boot or Logon Autostart Execution", "Persistence"),
    "T1547.009": ("Shortcut Modification", "Persistence"),
    "T1548": ("Abuse Elevation Control Mechanism", "Privilege Escalation"),
    "T1550": ("Use Alternate Authentication Material", "Defense Evasion"),
    "T1550.002": ("Pass the Hash", "Defense Evasion"),
    "T1552": ("Unsecured Credentials", "Credential Access"),
    "T1552.002": ("Credentials in Registry", "Credential Access"),
    "T1553": ("Subvert Trust Controls", "Defense Evasion"),
    "T1553.002": ("Code Signing", "Defense Evasion"),
    "T1554": ("Compromise Host Software Binary", "Persistence"),
    "T1556": ("Modify Authentication Process", "Credential Access"),
    "T1557": ("Adversary-in-the-Middle", "Credential Access"),
    "T1557.001": ("LLMNR/NBT-NS Poisoning and SMB Relay", "Credential Access"),
    "T1557.003": ("DHCP Spoofing", "Credential Access"),
    "T1558": ("Steal or Forge Kerberos Tickets", "Credential Access"),
    "T1558.003": ("Kerberoasting", "Credential Access"),
    "T1566": ("Phishing", "Initial Access"),
    "T1566.001": ("Spearphishing Attachment", "Initial Access"),
    "T1569": ("System Services", "Execution"),
    "T1569.002": ("Service Execution", "Execution"),
    "T1570": ("Lateral Tool Transfer", "Lateral Movement"),
    "T1574": ("Hijack Execution Flow", "Persistence"),
    "T1574.011": ("Services Registry Permissions Weakness", "Persistence"),
}

UNKNOWN_NAME = "not in this SIEM's ATT&CK table"


def normalize(tag: str) -> str | None:
    """`attack.t1003.006`, `T1003.006` or `t1003_006` → `T1003.006`; None if not a technique."""
    text = str(tag).strip().upper().removeprefix("ATTACK.").replace("_", ".")
    return text if _TECHNIQUE.match(text) else None


def describe(technique_id: str) -> dict[str, str]:
    """`{"id","name","tactic"}`; a sub-technique is named "Parent: Sub" as ATT&CK writes it."""
    known = TECHNIQUES.get(technique_id)
    if known is None:
        return {"id": technique_id, "name": UNKNOWN_NAME, "tactic": ""}
    name, tactic = known
    parent = TECHNIQUES.get(technique_id.split(".")[0])
    if "." in technique_id and parent is not None:
        name = f"{parent[0]}: {name}"
    return {"id": technique_id, "name": name, "tactic": tactic}


def techniques(tags) -> list[dict[str, str]]:
    """Each distinct technique among `tags`, in order, described."""
    ids = dict.fromkeys(filter(None, (normalize(tag) for tag in tags or [])))
    return [describe(technique_id) for technique_id in ids]
