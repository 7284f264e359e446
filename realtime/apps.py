from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        post_save.connect(
            forget_cached_sockets_of_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="realtime.forget_cached_user",
        )
        m2m_changed.connect(
            forget_cached_sockets_of_group_change,
            sender=get_user_model().groups.through,
            dispatch_uid="realtime.forget_cached_groups",
        )


def forget_cached_sockets_of_user(
    sender, instance, created=False, update_fields=None, **_kwargs
) -> None:
    """A saved user (flags, superuser, name) may have a new role: the cached WebSocket
    identities of its sessions (realtime.auth) are dropped once the change commits."""
    if created or (update_fields and set(update_fields) <= {"last_login", "password"}):
        return  # a login (simplejwt's UPDATE_LAST_LOGIN) or a password change: same role
    from realtime.auth import forget_user

    user_id = instance.pk
    transaction.on_commit(lambda: forget_user(user_id), robust=True)


def forget_cached_sockets_of_group_change(
    sender, instance, action, reverse, pk_set=None, **_kwargs
) -> None:
    """Groups are roles: a user added to or removed from one gets its role read again."""
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    from realtime.auth import forget_user

    # user.groups.add(...): instance is the user; group.user_set.add(...): the users in pk_set.
    user_ids = list(pk_set or ()) if reverse else [instance.pk]
    for user_id in user_ids:
        transaction.on_commit(lambda uid=user_id: forget_user(uid), robust=True)
