"""Admin pages for detection: built-in rule overrides, the Sigma rules found on disk (level
override), rule exceptions, and hits per rule (24 h / 7 d, last hit) in both rule lists.

Imported by alerts/admin.py. Changes take effect in this process at once and in every other
worker within DETECTION_CONFIG_TTL_SEC (the engine re-reads these tables that often).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from alerts.detection import services
from alerts.detection.builtin import BUILTIN_BY_ID
from alerts.detection.catalog import ensure_builtin_rows
from alerts.detection.exceptions import normalize_conditions
from alerts.detection.hits import hit_annotations
from alerts.models import DetectionRule, RuleException, SigmaRule

HIT_COLUMNS = ("alerts_24h", "events_24h", "alerts_7d", "events_7d", "last_hit", "exceptions")


class RuleStatsMixin:
    """Hits per rule and the exception count as sortable columns of a rule changelist."""

    def get_queryset(self, request):
        counts = (
            RuleException.objects.filter(rule_id=OuterRef("rule_id"))
            .order_by()
            .values("rule_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                **hit_annotations(),
                exception_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0),
            )
        )

    @admin.display(description="alerts 24 h", ordering="alerts_24h")
    def alerts_24h(self, obj) -> int:
        return obj.alerts_24h

    @admin.display(description="events 24 h", ordering="events_24h")
    def events_24h(self, obj) -> int:
        return obj.events_24h

    @admin.display(description="alerts 7 d", ordering="alerts_7d")
    def alerts_7d(self, obj) -> int:
        return obj.alerts_7d

    @admin.display(description="events 7 d", ordering="events_7d")
    def events_7d(self, obj) -> int:
        return obj.events_7d

    @admin.display(description="last hit", ordering="last_hit")
    def last_hit(self, obj):
        return obj.last_hit

    @admin.display(description="exceptions", ordering="exception_count")
    def exceptions(self, obj) -> str:
        query = urlencode({"rule_id": obj.rule_id})
        listing = reverse("admin:alerts_ruleexception_changelist") + "?" + query
        adding = reverse("admin:alerts_ruleexception_add") + "?" + query
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">add</a>', listing, obj.exception_count, adding
        )


@admin.register(DetectionRule)
class DetectionRuleAdmin(RuleStatsMixin, admin.ModelAdmin):
    list_display = (
        "rule_id",
        "title",
        "enabled",
        "threshold",
        "window_seconds",
        "severity",
        "defaults",
        *HIT_COLUMNS,
        "updated_at",
    )
    list_editable = ("enabled", "threshold", "window_seconds", "severity")
    list_filter = ("enabled",)
    readonly_fields = ("rule_id", "title", "defaults", "updated_at")
    fields = (
        "rule_id",
        "title",
        "enabled",
        "threshold",
        "window_seconds",
        "severity",
        "defaults",
        "updated_at",
    )

    def has_add_permission(self, request) -> bool:
        return False  # one row per built-in rule, created by the code

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="rule")
    def title(self, obj: DetectionRule) -> str:
        rule = BUILTIN_BY_ID.get(obj.rule_id)
        return rule.title if rule else "(unknown rule)"

    @admin.display(description="defaults (settings)")
    def defaults(self, obj: DetectionRule) -> str:
        rule = BUILTIN_BY_ID.get(obj.rule_id)
        if rule is None:
            return ""
        parts = [f"severity {rule.severity}"]
        if rule.window:
            parts.insert(0, f"{rule.default_threshold()} in {rule.default_window()} s")
        return ", ".join(parts)

    def changelist_view(self, request, extra_context=None):
        ensure_builtin_rows()  # rules added in code since the migration appear here
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change) -> None:
        """Through the service: audited (who changed which threshold from what to what)."""
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        saved = services.update_detection_rule(obj, actor=request.user, **changes)
        obj.updated_at = saved.updated_at


class LoadedFilter(admin.SimpleListFilter):
    title = "loaded"
    parameter_name = "loaded"

    def lookups(self, request, model_admin):
        return (("yes", "loaded"), ("no", "load error"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(error="")
        if self.value() == "no":
            return queryset.exclude(error="")
        return queryset


@admin.register(SigmaRule)
class SigmaRuleAdmin(RuleStatsMixin, admin.ModelAdmin):
    list_display = (
        "title",
        "kind",
        "level",
        "level_override",
        "enabled",
        "loaded",
        *HIT_COLUMNS,
        "error_short",
        "path",
    )
    list_editable = ("enabled", "level_override")
    list_filter = ("enabled", LoadedFilter, "kind", "level", "level_override")
    search_fields = ("title", "path", "rule_id", "error")
    readonly_fields = (
        "rule_id",
        "title",
        "path",
        "kind",
        "level",
        "techniques",
        "error",
        "loaded_at",
    )
    fields = (
        "title",
        "rule_id",
        "path",
        "kind",
        "level",
        "level_override",
        "techniques",
        "enabled",
        "error",
        "loaded_at",
    )
    actions = ("enable", "disable", "reload")

    def has_add_permission(self, request) -> bool:
        return False  # rules come from SIGMA_RULES_DIR

    @admin.display(boolean=True)
    def loaded(self, obj: SigmaRule) -> bool:
        return obj.loaded

    @admin.display(description="load error")
    def error_short(self, obj: SigmaRule) -> str:
        return obj.error[:120]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rows mirror SIGMA_RULES_DIR; disable a rule instead (audited)

    def save_model(self, request, obj, form, change) -> None:
        """Only `enabled` and `level_override` are editable; through the services, audited."""
        if "enabled" in form.changed_data:
            services.set_sigma_rules_enabled(
                [obj], enabled=form.cleaned_data["enabled"], actor=request.user
            )
        if "level_override" in form.changed_data:
            services.set_sigma_rule_level(
                obj, level=form.cleaned_data["level_override"], actor=request.user
            )

    # Every action declares the permission it needs: a view-only staff member (viewer) sees
    # none of them, and a forged POST is refused by the admin.
    @admin.action(permissions=["change"], description="Enable the selected rules")
    def enable(self, request, queryset) -> None:
        count = services.set_sigma_rules_enabled(queryset, enabled=True, actor=request.user)
        self.message_user(request, f"{count} rule(s) enabled.")

    @admin.action(permissions=["change"], description="Disable the selected rules")
    def disable(self, request, queryset) -> None:
        count = services.set_sigma_rules_enabled(queryset, enabled=False, actor=request.user)
        self.message_user(request, f"{count} rule(s) disabled.")

    @admin.action(
        permissions=["change"],
        description="Re-read SIGMA_RULES_DIR (list new rules and load errors)",
    )
    def reload(self, request, queryset) -> None:
        if not settings.SIGMA_RULES_DIR:
            self.message_user(request, "SIGMA_RULES_DIR is not set.", messages.WARNING)
            return
        ruleset = services.reload_sigma_rules(settings.SIGMA_RULES_DIR, actor=request.user)
        refused = sum(1 for entry in ruleset.entries if entry.error)
        self.message_user(
            request,
            f"{len(ruleset.rules) + len(ruleset.correlations)} rule(s) loaded, {refused} refused. "
            "Workers pick up new rule files when restarted.",
        )


class RuleExceptionForm(forms.ModelForm):
    class Meta:
        model = RuleException
        fields = ("rule_id", "conditions", "comment")
        help_texts = {
            "rule_id": "builtin.… or sigma:… (the rule lists link here with it filled in).",
            "conditions": "Field → value or list of values, all must hold, e.g. "
            '{"SubjectUserName": "svc_backup"} or {"host": ["ws01", "ws02"]}. Exact, '
            "case-insensitive; field names as the rule reads them.",
        }

    def clean_rule_id(self) -> str:
        rule_id = self.cleaned_data["rule_id"].strip()
        if not services.known_rule(rule_id):
            raise ValidationError(f"No such rule: {rule_id}")
        return rule_id

    def clean_conditions(self):
        try:
            return normalize_conditions(self.cleaned_data["conditions"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@admin.register(RuleException)
class RuleExceptionAdmin(admin.ModelAdmin):
    form = RuleExceptionForm
    list_display = ("rule_id", "rule_title", "conditions", "comment", "created_by", "updated_at")
    list_filter = ("rule_id",)
    search_fields = ("rule_id", "comment")
    readonly_fields = ("created_by", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # An exception stays with its rule: change it, or remove it and add another.
        return (*self.readonly_fields, "rule_id") if obj is not None else self.readonly_fields

    @admin.display(description="rule")
    def rule_title(self, obj: RuleException) -> str:
        builtin = BUILTIN_BY_ID.get(obj.rule_id)
        if builtin is not None:
            return builtin.title
        row = SigmaRule.objects.filter(rule_id=obj.rule_id).values_list("title", flat=True)
        return next(iter(row), "(unknown rule)")

    def save_model(self, request, obj, form, change) -> None:
        """Through the services: audited, and every engine reloads its exceptions."""
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in ("conditions", "comment")}
            saved = services.update_rule_exception(obj, actor=request.user, **changes)
        else:
            saved = services.add_rule_exception(
                data["rule_id"],
                conditions=data["conditions"],
                comment=data.get("comment", ""),
                actor=request.user,
            )
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:
        services.delete_rule_exception(obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for exception in queryset:
            services.delete_rule_exception(exception, actor=request.user)
