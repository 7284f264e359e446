"""Sessions in the admin: who is logged in from where, and revoking their tokens."""

from __future__ import annotations

from django.contrib import admin, messages

from accounts.models import Session
from accounts.services import revoke_session


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

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="Revoke selected sessions", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        revoked = sum(
            revoke_session(session, reason="revoked by admin", actor=request.user)
            for session in queryset.select_related("user")
        )
        self.message_user(request, f"Revoked {revoked} session(s).", messages.SUCCESS)
