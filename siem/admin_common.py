"""Admin pieces shared by alerts and incidents: the audit timeline inline and bulk triage."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db import transaction

from siem.errors import InvalidTransition


class ActivityInline(admin.TabularInline):
    """The read-only audit timeline; rows are written by the services, never by hand."""

    extra = 0
    can_delete = False
    fields = ("created_at", "actor_name", "action", "from_status", "to_status", "note")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def apply_to_each(modeladmin, request, queryset, verb: str, noun: str, change: Callable) -> None:
    """Run a service on each selected object; report what worked and why the rest did not."""
    done = 0
    for obj in queryset:
        try:
            with transaction.atomic():
                change(obj)
            done += 1
        except InvalidTransition as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb.capitalize()} {done} {noun}(s).", messages.SUCCESS)
