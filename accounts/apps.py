from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and sessions"

    def ready(self) -> None:
        from accounts.roles import sync_role_permissions

        post_migrate.connect(sync_role_permissions, dispatch_uid="accounts.sync_role_permissions")
