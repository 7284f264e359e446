from __future__ import annotations

from django.contrib import admin

from incidents import services
from incidents.models import Incident, IncidentActivity
from siem.admin_common import ActivityInline, apply_to_each


class IncidentActivityInline(ActivityInline):
    model = IncidentActivity


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = (
        "incident_id",
        "title",
        "severity",
        "status",
        "escalation_level",
        "assigned_to",
        "created_at",
        "closed_at",
    )
    list_filter = ("status", "severity", "escalation_level", "assigned_to")
    search_fields = ("title", "description", "resolution")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = (
        "incident_id",
        "status",
        "escalation_level",
        "created_by",
        "created_at",
        "updated_at",
        "closed_at",
        "resolution",
    )
    # Linking alerts goes through the service (timeline row + broadcast): see save_model.
    raw_id_fields = ("alerts",)
    list_select_related = ("assigned_to",)
    inlines = [IncidentActivityInline]
    actions = ["escalate_selected", "close_selected"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # incidents are closed, not deleted
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a case file: close it instead (on its timeline)

    def _apply(self, request, queryset, verb, change) -> None:
        apply_to_each(self, request, queryset, verb, "incident", change)

    @admin.action(permissions=["change"], description="Escalate selected incidents")
    def escalate_selected(self, request, queryset):
        self._apply(
            request,
            queryset,
            "escalated",
            lambda incident: services.escalate_incident(
                incident, actor=request.user, reason="Escalated from the admin"
            ),
        )

    @admin.action(permissions=["change"], description="Close selected incidents")
    def close_selected(self, request, queryset):
        self._apply(
            request,
            queryset,
            "closed",
            lambda incident: services.close_incident(
                incident, actor=request.user, resolution="Closed from the admin"
            ),
        )

    def save_model(self, request, obj, form, change):
        """Writes go through the services (timeline row + broadcast), alert links included."""
        alerts = form.cleaned_data.get("alerts") if "alerts" in form.changed_data else None
        if not change:
            created = services.create_incident(
                title=obj.title,
                severity=obj.severity,
                description=obj.description,
                assigned_to=obj.assigned_to,
                alerts=alerts or (),
                actor=request.user,
            )
            obj.pk = created.pk
            obj.incident_id = created.incident_id
            return
        fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in {"title", "description", "severity", "assigned_to"}
        }
        if fields or alerts is not None:
            services.update_incident(
                Incident.objects.get(pk=obj.pk),
                actor=request.user,
                alerts=list(alerts) if alerts is not None else None,
                **fields,
            )

    def save_related(self, request, form, formsets, change):
        """Only the inlines: the `alerts` links were saved by the service in save_model (a plain
        `form.save_m2m()` would set them again, with no timeline row and no broadcast)."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
