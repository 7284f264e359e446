from __future__ import annotations

from django.contrib import admin

from events.models import SecurityEvent


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """Events are evidence: read-only in the admin (they arrive through the API and agents)."""

    list_display = (
        "event_id",
        "timestamp",
        "computer",
        "event_code",
        "severity",
        "user_name",
        "source_ip",
        "ai_status",
        "ai_score",
        "ai_category",
    )
    list_filter = ("severity", "ai_status", "source_type", "event_code", "ai_category")
    search_fields = ("computer", "message", "user_name", "source_ip", "=event_code")
    date_hierarchy = "timestamp"
    ordering = ("-timestamp",)
    show_full_result_count = False  # a COUNT(*) over millions of events on every page is waste

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # evidence: nobody deletes security events by hand

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
