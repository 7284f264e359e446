"""The three roles of SPEC.md, as Django groups; superusers count as admin."""

from __future__ import annotations

ADMIN = "admin"
ANALYST = "analyst"
VIEWER = "viewer"
ROLES = (ADMIN, ANALYST, VIEWER)
# Higher wins when a user is in several groups.
_RANK = {VIEWER: 1, ANALYST: 2, ADMIN: 3}


def get_role(user) -> str | None:
    """The user's effective role, or None for a user in no role group."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return ADMIN
    names = {name for name in user.groups.values_list("name", flat=True) if name in _RANK}
    if not names:
        return None
    return max(names, key=_RANK.__getitem__)


def can_triage(user) -> bool:
    """Admins and analysts create events and triage alerts and incidents."""
    return get_role(user) in {ADMIN, ANALYST}


def is_admin(user) -> bool:
    return get_role(user) == ADMIN
