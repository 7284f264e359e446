from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction

from alerts import services
from alerts.detection import admin as detection_admin  # noqa: F401 - registers rule pages
from alerts.models import Alert, AlertActivity
from siem.errors import InvalidTransition


class AlertActivityInline(admin.TabularInline):
    model = AlertActivity
    extra = 0
    can_delete = False
    fields = ("created_at", "actor_name", "action", "from_status", "to_status", "note")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _apply(modeladmin, request, queryset, verb: str, change) -> None:
    """Run a service on each selected alert; report what worked and why the rest did not."""
    done, refused = 0, []
    for alert in queryset:
        try:
            with transaction.atomic():
                change(alert)
            done += 1
        except InvalidTransition as exc:
            refused.append(str(exc))
    if done:
        modeladmin.message_user(request, f"{verb.capitalize()} {done} alert(s).", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, reason, messages.WARNING)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "alert_id",
        "title",
        "severity",
        "status",
        "category",
        "hostname",
        "assigned_to",
        "occurrence_count",
        "source",
        "created_at",
    )
    list_filter = ("status", "severity", "category", "source", "assigned_to")
    search_fields = ("title", "description", "hostname", "category", "rule_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = (
        "alert_id",
        "status",
        "acknowledged_at",
        "resolved_at",
        "source",
        "rule_id",
        "mitre_techniques",
        "dedup_key",
        "occurrence_count",
        "first_seen",
        "last_seen",
        "created_by",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("events",)
    list_select_related = ("assigned_to",)
    inlines = [AlertActivityInline]
    actions = ["acknowledge_selected", "resolve_selected", "mark_false_positive"]

    @admin.action(permissions=["change"], description="Acknowledge selected alerts (assign to me)")
    def acknowledge_selected(self, request, queryset):
        _apply(
            self,
            request,
            queryset,
            "acknowledged",
            lambda alert: services.acknowledge_alert(alert, actor=request.user),
        )

    @admin.action(permissions=["change"], description="Resolve selected alerts")
    def resolve_selected(self, request, queryset):
        _apply(
            self,
            request,
            queryset,
            "resolved",
            lambda alert: services.resolve_alert(
                alert, actor=request.user, resolution="Resolved from the admin"
            ),
        )

    @admin.action(permissions=["change"], description="Mark selected alerts as false positives")
    def mark_false_positive(self, request, queryset):
        _apply(
            self,
            request,
            queryset,
            "closed as false positive",
            lambda alert: services.resolve_alert(alert, actor=request.user, false_positive=True),
        )

    def save_model(self, request, obj, form, change):
        """Writes from the admin go through the services so they are audited and broadcast."""
        if not change:
            created = services.create_alert(
                title=obj.title,
                severity=obj.severity,
                category=obj.category,
                hostname=obj.hostname,
                description=obj.description,
                actor=request.user,
            )
            obj.pk = created.pk
            obj.alert_id = created.alert_id
            return
        fields = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in {"title", "description", "severity", "category", "hostname", "assigned_to"}
        }
        if fields:
            services.update_alert(Alert.objects.get(pk=obj.pk), actor=request.user, **fields)
