from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, post_save


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and sessions"

    def ready(self) -> None:
        from accounts.roles import sync_role_permissions

        post_migrate.connect(sync_role_permissions, dispatch_uid="accounts.sync_role_permissions")
        post_save.connect(
            end_sessions_of_deactivated_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="accounts.end_sessions_of_deactivated_user",
        )


def end_sessions_of_deactivated_user(sender, instance, **_kwargs) -> None:
    """A user switched to inactive (admin, shell, API) loses every session at once.

    Every request and socket re-checks `is_active` anyway; revoking the sessions also closes the
    user's open sockets within moments instead of at the next periodic re-check.
    """
    if instance.is_active:
        return
    from accounts.models import Session
    from accounts.services import revoke_user_sessions

    if Session.objects.active().filter(user=instance).exists():
        revoke_user_sessions(instance, reason="user deactivated")
