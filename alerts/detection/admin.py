"""Admin pages for detection: built-in rule overrides and the Sigma rules found on disk.

Imported by alerts/admin.py. Changes take effect in this process at once and in every other
worker within DETECTION_CONFIG_TTL_SEC (the engine re-reads these tables that often).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages

from alerts.detection.builtin import BUILTIN_BY_ID
from alerts.detection.catalog import ensure_builtin_rows, sync_sigma_rules
from alerts.detection.engine import invalidate_config
from alerts.detection.sigma import RuleFilter, load_rules
from alerts.models import DetectionRule, SigmaRule


@admin.register(DetectionRule)
class DetectionRuleAdmin(admin.ModelAdmin):
    list_display = (
        "rule_id",
        "title",
        "enabled",
        "threshold",
        "window_seconds",
        "severity",
        "defaults",
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
        super().save_model(request, obj, form, change)
        invalidate_config()


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
class SigmaRuleAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "level", "enabled", "loaded", "error_short", "path")
    list_editable = ("enabled",)
    list_filter = ("enabled", LoadedFilter, "kind", "level")
    search_fields = ("title", "path", "rule_id", "error")
    readonly_fields = ("rule_id", "title", "path", "kind", "level", "error", "loaded_at")
    fields = ("title", "rule_id", "path", "kind", "level", "enabled", "error", "loaded_at")
    actions = ("enable", "disable", "reload")

    def has_add_permission(self, request) -> bool:
        return False  # rules come from SIGMA_RULES_DIR

    @admin.display(boolean=True)
    def loaded(self, obj: SigmaRule) -> bool:
        return obj.loaded

    @admin.display(description="load error")
    def error_short(self, obj: SigmaRule) -> str:
        return obj.error[:120]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        invalidate_config()

    @admin.action(description="Enable the selected rules")
    def enable(self, request, queryset) -> None:
        count = queryset.update(enabled=True)
        invalidate_config()
        self.message_user(request, f"{count} rule(s) enabled.")

    @admin.action(description="Disable the selected rules")
    def disable(self, request, queryset) -> None:
        count = queryset.update(enabled=False)
        invalidate_config()
        self.message_user(request, f"{count} rule(s) disabled.")

    @admin.action(description="Re-read SIGMA_RULES_DIR (list new rules and load errors)")
    def reload(self, request, queryset) -> None:
        if not settings.SIGMA_RULES_DIR:
            self.message_user(request, "SIGMA_RULES_DIR is not set.", messages.WARNING)
            return
        ruleset = load_rules(settings.SIGMA_RULES_DIR, RuleFilter.from_settings())
        sync_sigma_rules(ruleset)
        refused = sum(1 for entry in ruleset.entries if entry.error)
        self.message_user(
            request,
            f"{len(ruleset.rules) + len(ruleset.correlations)} rule(s) loaded, {refused} refused. "
            "Workers pick up new rule files when restarted.",
        )
