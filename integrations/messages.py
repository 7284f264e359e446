"""What an integration says: the webhook body and the texts for chat and e-mail.

Routing freezes two dicts per message on the Delivery row:
- `body`: the webhook JSON, `{"type","action","data","url"}`, where `data` is exactly the `data`
  of the WebSocket message for the same write (realtime.messages);
- `summary`: the facts people read — title, severity, hosts, users, IPs, ATT&CK ids, link —
  which `slack()`, `telegram()` and `email()` render.
"""

from __future__ import annotations

import html
import re
from typing import Any

from django.conf import settings

from realtime import messages as wire
from siem.choices import Severity

MAX_ENTITIES = 10  # hosts/users/IPs listed per message; the page has the rest
DIGEST_MAX_ITEMS = 50
_TECHNIQUE = re.compile(r"(?i)^(?:attack\.)?(t\d{4}(?:\.\d{3})?)$")
# Slack attachment colours per severity (info … critical).
_COLOURS = {1: "#6c757d", 2: "#2b7bb9", 3: "#e0a800", 4: "#fd7e14", 5: "#d00000"}


def link(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def severity_label(severity: int) -> str:
    try:
        return Severity(severity).label
    except ValueError:
        return str(severity)


def attack_ids(techniques) -> list[str]:
    """ATT&CK technique ids from an alert's `mitre_techniques` ("T1110", "attack.t1110.001",
    or {"id": ...} objects), upper-cased, de-duplicated, in order."""
    found: list[str] = []
    for item in techniques or []:
        value = item.get("id", "") if isinstance(item, dict) else str(item)
        match = _TECHNIQUE.match(value.strip())
        if match and match.group(1).upper() not in found:
            found.append(match.group(1).upper())
    return found


def _distinct(values, limit: int = MAX_ENTITIES) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))[:limit]


def _entities(events) -> tuple[list[str], list[str], list[str]]:
    rows = list(events.order_by().values_list("computer", "user_name", "source_ip")[:500])
    return (
        _distinct(r[0] for r in rows),
        _distinct(r[1] for r in rows),
        _distinct(r[2] for r in rows),
    )


def for_alert(alert, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    url = link(f"/alerts/{alert.alert_id}/")
    hosts, users, ips = _entities(alert.events.all())
    summary = {
        "kind": "alert",
        "id": alert.alert_id,
        "action": action,
        "title": alert.title,
        "severity": alert.severity,
        "category": alert.category,
        "description": alert.description,
        "hosts": _distinct([alert.hostname, *hosts]),
        "users": users,
        "ips": ips,
        "attack": attack_ids(alert.mitre_techniques),
        "url": url,
    }
    body = {"type": "alert", "action": action, "data": wire.alert_data(alert), "url": url}
    return body, summary


def brief(alert) -> dict[str, Any]:
    """An alert's summary without its events' entities (one per alert of a digest, no query)."""
    return {
        "kind": "alert",
        "id": alert.alert_id,
        "action": "created",
        "title": alert.title,
        "severity": alert.severity,
        "category": alert.category,
        "description": "",
        "hosts": _distinct([alert.hostname]),
        "users": [],
        "ips": [],
        "attack": attack_ids(alert.mitre_techniques),
        "url": link(f"/alerts/{alert.alert_id}/"),
    }


def for_incident(incident, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from events.models import SecurityEvent

    url = link(f"/incidents/{incident.incident_id}/")
    alerts = list(incident.alerts.order_by("-severity", "alert_id")[:100])
    hosts, users, ips = _entities(SecurityEvent.objects.filter(alerts__in=alerts))
    summary = {
        "kind": "incident",
        "id": incident.incident_id,
        "action": action,
        "title": incident.title,
        "severity": incident.severity,
        "category": "",
        "description": incident.description,
        "hosts": _distinct([*(a.hostname for a in alerts), *hosts]),
        "users": users,
        "ips": ips,
        "attack": attack_ids(t for a in alerts for t in (a.mitre_techniques or [])),
        "url": url,
        "escalation_level": incident.escalation_level,
    }
    body = {"type": "incident", "action": action, "data": wire.incident_data(incident), "url": url}
    return body, summary


def for_digest(items: list[dict[str, Any]], window_start: str, window_end: str):
    """One message for the alerts a flood pushed past the rate limit (`items`: their summaries)."""
    url = link("/")
    shown = sorted(items, key=lambda s: (-s["severity"], s["id"]))[:DIGEST_MAX_ITEMS]
    top = max((s["severity"] for s in items), default=1)
    data = {
        "count": len(items),
        "window_start": window_start,
        "window_end": window_end,
        "max_severity": top,
        "alerts": [
            {
                "alert_id": s["id"],
                "title": s["title"],
                "severity": s["severity"],
                "category": s["category"],
                "hostname": (s["hosts"] or [""])[0],
                "url": s["url"],
            }
            for s in shown
        ],
    }
    summary = {
        "kind": "digest",
        "id": None,
        "action": "digest",
        "title": f"{len(items)} more alert(s) between {window_start} and {window_end}",
        "severity": top,
        "category": "",
        "description": "\n".join(
            f"[{severity_label(s['severity'])}] #{s['id']} {s['title']}" for s in shown
        ),
        "hosts": _distinct(h for s in items for h in s["hosts"]),
        "users": _distinct(u for s in items for u in s["users"]),
        "ips": _distinct(i for s in items for i in s["ips"]),
        "attack": _distinct((t for s in items for t in s["attack"]), limit=20),
        "url": url,
    }
    return {"type": "digest", "action": "rate_limited", "data": data, "url": url}, summary


def for_test(integration) -> tuple[dict[str, Any], dict[str, Any]]:
    url = link("/")
    title = f"Test message for integration {integration.name!r}"
    data = {"integration": integration.name, "kind": integration.kind, "message": title}
    summary = {
        "kind": "test",
        "id": None,
        "action": "test",
        "title": title,
        "severity": 1,
        "category": "",
        "description": "If you can read this, the SIEM can reach you.",
        "hosts": [],
        "users": [],
        "ips": [],
        "attack": [],
        "url": url,
    }
    return {"type": "test", "action": "test", "data": data, "url": url}, summary


# --- renderings --------------------------------------------------------------------------------
def headline(summary: dict[str, Any]) -> str:
    kind = summary["kind"]
    label = severity_label(summary["severity"]).upper()
    if kind in {"alert", "incident"}:
        what = f"{kind.capitalize()} #{summary['id']} {summary['action']}"
        return f"[{label}] {what}: {summary['title']}"
    if kind == "digest":
        return f"[{label}] Alert digest: {summary['title']}"
    return f"[TEST] {summary['title']}"


def facts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines shared by every rendering; empty values are left out."""
    rows = [
        ("Severity", f"{severity_label(summary['severity'])} ({summary['severity']})"),
        ("Category", summary.get("category", "")),
        ("Host", ", ".join(summary["hosts"])),
        ("User", ", ".join(summary["users"])),
        ("IP", ", ".join(summary["ips"])),
        ("ATT&CK", ", ".join(summary["attack"])),
    ]
    return [(name, value) for name, value in rows if value]


def plain_text(summary: dict[str, Any]) -> str:
    lines = [headline(summary), ""]
    lines += [f"{name}: {value}" for name, value in facts(summary)]
    if summary.get("description"):
        lines += ["", summary["description"]]
    lines += ["", summary["url"]]
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(summary: dict[str, Any]) -> dict[str, Any]:
    """Incoming-webhook body: `text` (what Mattermost and Rocket.Chat show, and Slack's
    notification text), `blocks` for Slack, `attachments` with fields for the other two."""
    title = _slack_escape(headline(summary))
    fields = facts(summary)
    details = "\n".join(f"*{name}:* {_slack_escape(value)}" for name, value in fields)
    colour = _COLOURS.get(summary["severity"], "#6c757d")
    return {
        "text": f"{title} — {summary['url']}",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*<{summary['url']}|{title}>*\n{details}"},
            }
        ],
        "attachments": [
            {
                "fallback": title,
                "color": colour,
                "title": title,
                "title_link": summary["url"],
                "text": _slack_escape(summary.get("description", ""))[:2000],
                "fields": [
                    {"title": name, "value": _slack_escape(value), "short": len(value) < 40}
                    for name, value in fields
                ],
            }
        ],
    }


def telegram(summary: dict[str, Any]) -> str:
    """`sendMessage` text with parse_mode=HTML (Telegram allows b, a, code…)."""
    lines = [f"<b>{html.escape(headline(summary))}</b>"]
    lines += [f"{html.escape(name)}: {html.escape(value)}" for name, value in facts(summary)]
    if summary.get("description"):
        lines.append(html.escape(summary["description"][:1500]))
    lines.append(f'<a href="{html.escape(summary["url"])}">Open in the SIEM</a>')
    return "\n".join(lines)[:4096]


def email_html(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th align='left'>{html.escape(n)}</th><td>{html.escape(v)}</td></tr>"
        for n, v in facts(summary)
    )
    description = (
        f"<p>{html.escape(summary['description']).replace(chr(10), '<br>')}</p>"
        if summary.get("description")
        else ""
    )
    url = html.escape(summary["url"])
    return (
        f"<html><body><h2>{html.escape(headline(summary))}</h2>"
        f"<table>{rows}</table>{description}"
        f'<p><a href="{url}">{url}</a></p></body></html>'
    )
