"""Agent writes: enrollment, heartbeat, status changes, token revocation."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from ipaddress import ip_address as ip_address_of

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import audit
from agents.models import Agent, AgentStatus, hash_agent_token
from realtime.manager import get_connection_manager

logger = logging.getLogger(__name__)


def new_agent_token() -> str:
    return "agt_" + secrets.token_urlsafe(32)


def register_agent(
    *, hostname: str, ip_address: str | None = None, os: str = "", version: str = "", actor=None
) -> tuple[Agent, str]:
    """Enroll an agent; returns it and its token, which is shown this once and stored hashed."""
    token = new_agent_token()
    now = timezone.now()
    with transaction.atomic():
        agent = Agent.objects.create(
            hostname=hostname,
            ip_address=ip_address or None,
            os=os,
            version=version,
            status=AgentStatus.ONLINE,
            last_seen=now,
            registered_at=now,
            token_hash=hash_agent_token(token),
        )
        _audit_enrolled(agent, actor=actor, ip_address=ip_address, re_enrolled=False)
        get_connection_manager().broadcast_agent_status(agent, action="registered")
    logger.info("Agent %s registered for host %s", agent.agent_id, hostname)
    return agent, token


def authenticate_agent(token: str) -> Agent | None:
    """The agent holding `token`, if the token is known and not revoked."""
    if not token:
        return None
    return Agent.objects.filter(
        token_hash=hash_agent_token(token), token_revoked_at__isnull=True
    ).first()


def heartbeat(agent: Agent, *, ip_address: str | None = None, version: str | None = None) -> Agent:
    """Mark the agent seen now; an offline agent comes back `online` (broadcast once)."""
    now = timezone.now()
    with transaction.atomic():
        changes = {"last_seen": now}
        if ip_address:
            changes["ip_address"] = ip_address
        if version:
            changes["version"] = version
        came_back = (
            Agent.objects.filter(pk=agent.pk)
            .exclude(status=AgentStatus.ONLINE)
            .update(status=AgentStatus.ONLINE, **changes)
        )
        if not came_back:
            Agent.objects.filter(pk=agent.pk).update(**changes)
        agent.refresh_from_db()
        if came_back:
            get_connection_manager().broadcast_agent_status(agent, action="online")
    return agent


def mark_offline(agent: Agent, *, reason: str = "missed heartbeats") -> bool:
    """Set one agent offline if it is online; True (and one broadcast) if this call changed it."""
    with transaction.atomic():
        changed = Agent.objects.filter(pk=agent.pk, status=AgentStatus.ONLINE).update(
            status=AgentStatus.OFFLINE
        )
        if changed:
            agent.refresh_from_db()
            get_connection_manager().broadcast_agent_status(agent, action="offline")
            logger.info("Agent %s (%s) offline: %s", agent.agent_id, agent.hostname, reason)
    return bool(changed)


def mark_silent_agents_offline(*, now=None) -> int:
    """Watchdog: agents silent for AGENT_OFFLINE_AFTER_SEC go offline; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.AGENT_OFFLINE_AFTER_SEC)
    silent = Agent.objects.filter(status=AgentStatus.ONLINE, last_seen__lt=cutoff)
    return sum(mark_offline(agent) for agent in silent)


def revoke_agent_token(agent: Agent, *, actor=None) -> bool:
    with transaction.atomic():
        changed = Agent.objects.filter(pk=agent.pk, token_revoked_at__isnull=True).update(
            token_revoked_at=timezone.now()
        )
        if changed:
            audit.record(
                "agent.token_revoked",
                actor=actor,
                target=agent,
                details={"hostname": agent.hostname},
            )
    if changed:
        logger.info(
            "Agent %s token revoked by %s", agent.agent_id, getattr(actor, "username", actor)
        )
    return bool(changed)


def delete_agent(agent: Agent, *, actor) -> None:
    """Forget an agent (so that a revoked host may enroll again); its events stay, unlinked."""
    with transaction.atomic():
        audit.record(
            "agent.deleted",
            actor=actor,
            target=agent,
            details={"hostname": agent.hostname, "agent_id": str(agent.agent_id)},
        )
        Agent.objects.filter(pk=agent.pk).delete()
    logger.warning("Agent %s (%s) deleted by %s", agent.agent_id, agent.hostname, actor)


def _audit_enrolled(agent: Agent, *, actor, ip_address: str | None, re_enrolled: bool) -> None:
    audit.record(
        "agent.enrolled",
        actor=actor,
        target=agent,
        details={"hostname": agent.hostname, "re_enrolled": re_enrolled},
        ip_address=_ip_or_none(ip_address),
    )


def _ip_or_none(value: str | None) -> str | None:
    try:
        return str(ip_address_of(value)) if value else None
    except ValueError:
        return None


class EnrollmentRefused(Exception):
    """Enrollment that policy forbids (the message is safe to show to the agent)."""


def enroll_agent(
    *, hostname: str, ip_address: str | None = None, os: str = "", version: str = "", actor=None
) -> tuple[Agent, str, bool]:
    """Enroll a host, or re-enroll a known one; returns (agent, token, re_enrolled).

    Re-enrolling a hostname we know (case-insensitive) keeps its agent row — same `agent_id`,
    its event history and its record-id de-duplication, so an agent reinstalled without its
    state file can re-ship the log from the start without duplicates — and replaces the token:
    the previous token stops working at once. A host whose token an administrator revoked is
    refused (EnrollmentRefused): revocation must not be undone by whoever holds the enrollment
    key; an administrator deletes the agent to allow it again.
    """
    with transaction.atomic():
        known = (
            Agent.objects.select_for_update()
            .filter(hostname__iexact=hostname)
            .order_by("registered_at")
            .first()
        )
        if known is None:
            agent, token = register_agent(
                hostname=hostname, ip_address=ip_address, os=os, version=version, actor=actor
            )
            return agent, token, False
        if known.token_revoked_at is not None:
            logger.warning(
                "Enrollment refused for host %s: agent %s was revoked by an administrator",
                hostname,
                known.agent_id,
            )
            raise EnrollmentRefused(
                f"The agent for host {hostname!r} was revoked by an administrator; "
                "an administrator must delete it before this host can enroll again."
            )
        token = new_agent_token()
        known.token_hash = hash_agent_token(token)
        known.ip_address = ip_address or known.ip_address
        known.os = os or known.os
        known.version = version or known.version
        known.status = AgentStatus.ONLINE
        known.last_seen = timezone.now()
        known.save(
            update_fields=["token_hash", "ip_address", "os", "version", "status", "last_seen"]
        )
        _audit_enrolled(known, actor=actor, ip_address=ip_address, re_enrolled=True)
        get_connection_manager().broadcast_agent_status(known, action="registered")
    logger.warning(
        "Agent %s re-enrolled for host %s: its previous token no longer works",
        known.agent_id,
        hostname,
    )
    return known, token, True
