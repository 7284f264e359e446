from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from alerts import services
from alerts.detection import admin as detection_admin  # noqa: F401 - registers rule pages
from alerts.models import Alert, AlertActivity
from siem.admin_common import ActivityInline, apply_to_each
from siem.pagination import EstimatedCountPaginator, exact_search


class AlertActivityInline(ActivityInline):
    model = AlertActivity


def _apply(modeladmin, request, queryset, verb: str, change) -> None:
    apply_to_each(modeladmin, request, queryset, verb, "alert", change)


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
    # Filters from choices and the (small) users table only, no date hierarchy, estimated counts:
    # no SELECT DISTINCT or COUNT(*) over every alert on each view (docs/performance.md, "Scale").
    list_filter = ("status", "severity", "source", "assigned_to")
    search_fields = ("title",)
    search_help_text = (
        "Exact host name, category or rule; #42 for alert 42; else words of the title."
    )
    ordering = ("-created_at",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
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
        "resolution",
        "linked_events",
    )
    # Links to events are evidence written by detection and the API (with a timeline row and a
    # broadcast); the admin shows how many, it does not edit them behind the services' back.
    exclude = ("events",)
    list_select_related = ("assigned_to",)
    inlines = [AlertActivityInline]
    actions = ["acknowledge_selected", "resolve_selected", "mark_false_positive"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # alerts are closed through the services, not deleted
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # evidence: resolve or mark false positive instead (both on the timeline)

    @admin.display(description="linked events")
    def linked_events(self, obj: Alert) -> int:
        return obj.events.count() if obj.pk else 0

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

    def get_search_results(self, request, queryset, search_term):
        """Exact values through indexes first (host, category, rule, `#id`); only a term that
        is none of those searches titles (`icontains`, a scan of the alerts table)."""
        term = search_term.strip()
        if term.startswith("#") and term[1:].isdigit() and len(term) < 20:
            return queryset.filter(alert_id=int(term[1:])), False
        if term:
            hosts = [Q(hostname=value) for value in dict.fromkeys([term, term.upper()])]
            found = exact_search(queryset, [*hosts, Q(category=term), Q(rule_id=term)])
            if found is not None:
                return found, False
        return super().get_search_results(request, queryset, search_term)

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
