"""Sigma logsources → the Windows channels and event ids a rule was written for.

A Sigma rule names its log by `product` / `category` / `service`; nothing in its detection says
"Sysmon event 1". Ignoring the logsource makes `category: process_creation` rules fire on
Security 4625s, so every rule is compiled with the (channel, event ids) pairs it may run on, and
the engine dispatches an event only to the rules of its own (channel, event id).

The tables are those of pySigma's Windows pipelines:

- `service` → channel: `sigma.pipelines.common.windows_logsource_mapping`, read from pySigma
  itself (one source of truth, updated with pySigma);
- `category` → Sysmon event id: pySigma-pipeline-sysmon's `sysmon_generic_logsource_eventid_
  mapping`; `ps_*` → PowerShell channel and id: pySigma-pipeline-windows'
  `windows_generic_category_channel_mapping`; `process_creation` → also Security 4688 with its
  fields mapped to Sysmon's names: pySigma-pipeline-windows' `windows_audit_pipeline`.

Those two packages require pySigma < 2.0 (their latest releases, 2.0.1 and 2.0.0, pin
`pysigma<2.0`), so they cannot be installed beside our pySigma 2.0.1 and their small tables are
restated here, entry for entry, with the few additions noted inline. `windows_audit_pipeline`'s
registry → 4657 mapping is left out: it needs an `OperationType` condition added to every rule,
and 4657 (object access auditing of registry keys) is rarely enabled.
"""

from __future__ import annotations

from dataclasses import dataclass

from sigma.pipelines.common import windows_logsource_mapping

SYSMON = "microsoft-windows-sysmon/operational"
SECURITY = "security"


def _channels(value) -> tuple[str, ...]:
    return tuple(v.lower() for v in ([value] if isinstance(value, str) else value))


# service → channels (lower case).
SERVICE_CHANNELS: dict[str, tuple[str, ...]] = {
    service: _channels(channel) for service, channel in windows_logsource_mapping.items()
}
# Used by SigmaHQ rules, not (yet) in pySigma's table.
SERVICE_CHANNELS.setdefault("smbserver-connectivity", ("microsoft-windows-smbserver/connectivity",))

# category → Sysmon event ids (pySigma-pipeline-sysmon).
SYSMON_CATEGORIES: dict[str, tuple[int, ...]] = {
    "process_creation": (1,),
    "file_change": (2,),
    "network_connection": (3,),
    "process_termination": (5,),
    "sysmon_status": (4, 16),
    "driver_load": (6,),
    "image_load": (7,),
    "create_remote_thread": (8,),
    "raw_access_thread": (9,),
    "process_access": (10,),
    "file_event": (11,),
    "registry_add": (12,),
    "registry_delete": (12,),
    "registry_set": (13,),
    "registry_rename": (14,),
    "registry_event": (12, 13, 14),
    "create_stream_hash": (15,),
    "pipe_created": (17, 18),
    "wmi_event": (19, 20, 21),
    "dns_query": (22,),
    "file_delete": (23, 26),
    "clipboard_capture": (24,),
    "process_tampering": (25,),
    "file_executable_detected": (29,),  # Sysmon 15's FileExecutableDetected (not in the table)
    "sysmon_error": (255,),
}
# category → (service, event id) (pySigma-pipeline-windows).
WINDOWS_CATEGORIES: dict[str, tuple[str, int]] = {
    "ps_module": ("powershell", 4103),
    "ps_script": ("powershell", 4104),
    "ps_classic_start": ("powershell-classic", 400),
    "ps_classic_provider_start": ("powershell-classic", 600),
    "ps_classic_script": ("powershell-classic", 800),
}
# Rule field → the Security 4688 field holding it (windows_audit_pipeline's field mapping).
AUDIT_4688_FIELDS = {
    "Image": "NewProcessName",
    "ParentImage": "ParentProcessName",
    "LogonId": "SubjectLogonId",
}


class UnmappedLogsource(Exception):
    """The rule's log cannot be told apart in Windows event logs: it is refused, not guessed."""


@dataclass(frozen=True)
class Source:
    """One log a rule runs on: a channel (None: any) and event ids (None: any)."""

    channel: str | None
    event_ids: frozenset[int] | None


def sources_for(product: str | None, category: str | None, service: str | None) -> list[Source]:
    """The logs a rule with this logsource runs on (raises UnmappedLogsource)."""
    product = (product or "").lower()
    category = (category or "").lower()
    service = (service or "").lower()
    if product and product != "windows":
        raise UnmappedLogsource(f"logsource product {product!r} is not Windows")
    if not product and not service:
        raise UnmappedLogsource("logsource names neither product windows nor a service")
    service_channels: tuple[str, ...] | None = None
    if service:
        service_channels = SERVICE_CHANNELS.get(service)
        if service_channels is None:
            raise UnmappedLogsource(f"logsource service {service!r} is not mapped to a channel")
    if not category:
        if service_channels is None:
            return [Source(None, None)]
        return [Source(channel, None) for channel in service_channels]
    found: list[Source] = []
    if category in SYSMON_CATEGORIES:
        found.append(Source(SYSMON, frozenset(SYSMON_CATEGORIES[category])))
    if category == "process_creation":
        found.append(Source(SECURITY, frozenset({4688})))
    if category in WINDOWS_CATEGORIES:
        ps_service, code = WINDOWS_CATEGORIES[category]
        found.extend(Source(ch, frozenset({code})) for ch in SERVICE_CHANNELS[ps_service])
    if not found:
        raise UnmappedLogsource(
            f"logsource category {category!r} has no Windows event log source "
            "(not in pySigma's Sysmon or Windows pipelines)"
        )
    if service_channels is not None:
        found = [s for s in found if s.channel in service_channels]
        if not found:
            raise UnmappedLogsource(
                f"logsource category {category!r} is not logged by service {service!r}"
            )
    return found


def narrow(sources: list[Source], event_ids: frozenset[int] | None) -> list[Source]:
    """Intersect the logsource's event ids with those the detection requires (if any)."""
    if event_ids is None:
        return sources
    narrowed = []
    for source in sources:
        ids = event_ids if source.event_ids is None else source.event_ids & event_ids
        if ids:
            narrowed.append(Source(source.channel, frozenset(ids)))
    return narrowed


def reference_pipeline():
    """The same tables as a pySigma processing pipeline, for pySigma's own backends.

    What pySigma-pipeline-sysmon's `sysmon_pipeline()` followed by pySigma-pipeline-windows'
    `windows_logsource_pipeline()` do: a category rule gets an `EventID` condition and becomes a
    `service` rule; every service rule gets a `Channel` condition. The SQLite reference of the
    tests and of `bench/detection.py` is converted with it. (Security 4688 is not added: one
    converted query has one logsource, so process_creation reads Sysmon 1, as in those pipelines.)
    """
    from sigma.pipelines.common import generate_windows_logsource_items
    from sigma.processing.conditions import LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import (
        AddConditionTransformation,
        ChangeLogsourceTransformation,
    )

    categories = {name: ("sysmon", ids) for name, ids in SYSMON_CATEGORIES.items()}
    categories |= {name: (svc, (code,)) for name, (svc, code) in WINDOWS_CATEGORIES.items()}
    items = []
    for category, (service, ids) in categories.items():

        def condition(category=category):  # a condition belongs to one processing item
            return [LogsourceCondition(category=category, product="windows")]

        items += [
            ProcessingItem(
                identifier=f"reference_{category}_eventid",
                transformation=AddConditionTransformation(
                    {"EventID": list(ids) if len(ids) > 1 else ids[0]}
                ),
                rule_conditions=condition(),
            ),
            ProcessingItem(
                identifier=f"reference_{category}_logsource",
                transformation=ChangeLogsourceTransformation(
                    product="windows", service=service, category=category
                ),
                rule_conditions=condition(),
            ),
        ]
    items += generate_windows_logsource_items("Channel", "{source}")
    return ProcessingPipeline(name="Windows logsources (reference)", priority=10, items=items)
