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


# Django model permissions each role group holds, so the admin enforces the same roles as the
# API: "app.model" → actions. Admin gets every permission of these apps plus user management.
_DOMAIN_APPS = ("accounts", "events", "alerts", "incidents", "agents", "integrations")
_READ_MODELS = (
    "events.securityevent",
    "alerts.alert",
    "alerts.alertactivity",
    "alerts.detectionrule",
    "alerts.sigmarule",
    "alerts.ruleexception",
    "incidents.incident",
    "incidents.incidentactivity",
    "agents.agent",
)
ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    VIEWER: {model: ("view",) for model in _READ_MODELS},
    ANALYST: {
        **{model: ("view",) for model in _READ_MODELS},
        "alerts.alert": ("view", "add", "change"),
        "incidents.incident": ("view", "add", "change"),
    },
}


def sync_role_permissions(**_kwargs) -> None:
    """Grant each role group its permissions; runs after every `migrate` (post_migrate).

    Permissions are only added, never removed, so an operator's extra grants survive. Models
    whose permissions do not exist yet (their app migrates later in the same run) are picked up
    by the post_migrate signal of that app.
    """
    from django.contrib.auth.models import Group, Permission

    groups = {group.name: group for group in Group.objects.filter(name__in=ROLES)}
    if not groups:
        return
    perms = Permission.objects.select_related("content_type")
    by_key = {
        (f"{p.content_type.app_label}.{p.content_type.model}", p.codename.split("_", 1)[0]): p
        for p in perms.filter(content_type__app_label__in=_DOMAIN_APPS)
    }
    if ADMIN in groups:
        everything = list(by_key.values()) + list(perms.filter(content_type__app_label="auth"))
        groups[ADMIN].permissions.add(*everything)
    for role, grants in ROLE_PERMISSIONS.items():
        if role in groups:
            wanted = [
                by_key[(model, action)]
                for model, actions in grants.items()
                for action in actions
                if (model, action) in by_key
            ]
            groups[role].permissions.add(*wanted)
