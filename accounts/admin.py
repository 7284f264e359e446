"""Sessions (who is logged in from where, revoking their tokens), the audit log (read-only,
admins only) and users (Django's page, with role changes audited)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts import audit
from accounts.models import AuditLog, Session
from accounts.roles import is_admin
from accounts.services import revoke_session
from siem.client_address import client_ip


class ActiveFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("inactive", "revoked or expired")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.active()
        if self.value() == "inactive":
            return queryset.exclude(pk__in=queryset.active().values("pk"))
        return queryset


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = (
        "short_jti",
        "user",
        "issued_at",
        "expires_at",
        "is_active",
        "revoked_at",
        "revoked_reason",
        "client_ip",
    )
    list_filter = (ActiveFilter, "revoked_reason", "issued_at")
    search_fields = ("user__username", "client_ip", "jti")
    date_hierarchy = "issued_at"
    list_select_related = ("user",)
    readonly_fields = (
        "jti",
        "user",
        "issued_at",
        "expires_at",
        "revoked_at",
        "revoked_reason",
        "client_ip",
        "user_agent",
    )
    actions = ["revoke_selected"]

    @admin.display(description="token id")
    def short_jti(self, obj: Session) -> str:
        return f"{obj.jti[:8]}…"

    @admin.display(boolean=True, description="active")
    def is_active(self, obj: Session) -> bool:
        return obj.is_active

    def has_add_permission(self, request) -> bool:
        return False  # sessions are issued by logging in, never typed in

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: deleting the row would end the session unaudited

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="Revoke selected sessions", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        revoked = sum(
            revoke_session(session, reason="revoked by admin", actor=request.user)
            for session in queryset.select_related("user")
        )
        self.message_user(request, f"Revoked {revoked} session(s).", messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the services (accounts/audit.py), never by hand."""

    list_display = (
        "created_at",
        "actor_name",
        "action",
        "target_type",
        "target_repr",
        "ip_address",
    )
    list_filter = ("action", "target_type")
    search_fields = ("actor_name", "action", "target_id", "target_repr", "ip_address")
    date_hierarchy = "created_at"
    readonly_fields = (
        "created_at",
        "actor",
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "details",
        "ip_address",
    )
    list_select_related = ("actor",)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_admin(request.user)  # admins only, whatever model permissions say

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditedUserAdmin(UserAdmin):
    """Django's user admin, plus an audit entry when a user's role, staff, superuser or active
    flag changes (SPEC roles are groups: who may see and change what)."""

    def _snapshot(self, user) -> dict:
        if user is None or user.pk is None:
            return {}
        return {
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "is_staff": user.is_staff,
            "is_superuser": user.is_superuser,
            "is_active": user.is_active,
        }

    def save_model(self, request, obj, form, change) -> None:
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        request._siem_user_before = self._snapshot(stored)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_siem_user_before", {})
        after = self._snapshot(form.instance)
        diff = {
            name: {"from": before.get(name), "to": value}
            for name, value in after.items()
            if before.get(name) != value
        }
        if diff and (change or diff.get("groups", {}).get("to") or after.get("is_superuser")):
            audit.record(
                "user.roles_changed" if change else "user.created",
                actor=request.user,
                target=form.instance,
                details={"user": form.instance.get_username(), **diff},
                ip_address=client_ip(request),
            )


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, AuditedUserAdmin)
