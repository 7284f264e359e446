from __future__ import annotations

from django.contrib import admin, messages

from agents import services
from agents.models import Agent


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    # token_hash is deliberately absent from every view: not even its hash is shown.
    list_display = (
        "hostname",
        "agent_id",
        "status",
        "ip_address",
        "os",
        "version",
        "last_seen",
        "registered_at",
        "token_active",
    )
    list_filter = ("status", "os", "version")
    search_fields = ("hostname", "=agent_id", "ip_address")
    date_hierarchy = "registered_at"
    ordering = ("hostname",)
    fields = (
        "agent_id",
        "hostname",
        "ip_address",
        "os",
        "version",
        "status",
        "last_seen",
        "registered_at",
        "token_revoked_at",
    )
    # Everything an agent is comes from its enrollment and heartbeats; the admin changes it only
    # through the actions below (services: audited, broadcast).
    readonly_fields = fields
    actions = ["revoke_tokens", "mark_offline", "delete_agents"]

    def has_add_permission(self, request) -> bool:
        return False  # agents enroll themselves with the enrollment key

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by the audited delete_agents
        return actions

    def delete_model(self, request, obj) -> None:
        services.delete_agent(obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for agent in queryset:
            services.delete_agent(agent, actor=request.user)

    @admin.action(
        permissions=["delete"],
        description="Delete the selected agents (audited; a revoked host may then enroll again)",
    )
    def delete_agents(self, request, queryset):
        count = 0
        for agent in queryset:
            services.delete_agent(agent, actor=request.user)
            count += 1
        self.message_user(request, f"Deleted {count} agent(s).", messages.SUCCESS)

    @admin.display(boolean=True, description="token active")
    def token_active(self, obj: Agent) -> bool:
        return obj.token_active

    @admin.action(permissions=["change"], description="Revoke the selected agents' tokens")
    def revoke_tokens(self, request, queryset):
        count = sum(services.revoke_agent_token(agent, actor=request.user) for agent in queryset)
        self.message_user(request, f"Revoked {count} agent token(s).", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Mark the selected agents offline")
    def mark_offline(self, request, queryset):
        count = sum(
            services.mark_offline(agent, reason=f"set by {request.user}") for agent in queryset
        )
        self.message_user(request, f"{count} agent(s) marked offline.", messages.SUCCESS)
