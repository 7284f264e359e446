"""The audit log's one writer: security-relevant changes outside the alert/incident timelines.

Services call `record` inside their transaction, so a rolled-back change leaves no entry and a
committed one always has its entry. Actions (docs/security.md "What is audited"):
`session.revoked`, `agent.enrolled`, `agent.token_revoked`, `rule.enabled`, `rule.disabled`,
`rule.changed`, `rule.exception_added`, `rule.exception_changed`, `rule.exception_removed`,
`rules.reloaded`, `user.roles_changed`, `login.lockout`.
"""

from __future__ import annotations

import logging
from typing import Any

from accounts.models import AuditLog
from siem.activity import actor_label, actor_user

logger = logging.getLogger("siem.audit")


def record(
    action: str,
    *,
    actor=None,
    target=None,
    target_type: str = "",
    target_id: object = "",
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditLog:
    """Write one entry. `target` is a model instance (its type and pk are taken) or None."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    user = actor_user(actor)
    entry = AuditLog.objects.create(
        actor=user if getattr(user, "pk", None) else None,
        actor_name=actor_label(actor)[:150],
        action=action,
        target_type=target_type[:64],
        target_id=str(target_id)[:255],
        target_repr=(str(target) if target is not None else "")[:255],
        details=details or {},
        ip_address=ip_address or None,
    )
    logger.info(
        "Audit: %s by %s on %s %s", action, entry.actor_name, entry.target_type, entry.target_id
    )
    return entry
