"""Integrations in the admin: edited through the services, the secret write-only, a test action;
the delivery log read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from integrations import services
from integrations.models import Delivery, Integration, IntegrationKind

_FIELDS = ("name", "kind", "target", "min_severity", "categories", "enabled")


class IntegrationForm(forms.ModelForm):
    # Not the model field: the stored secret is never put into the page, not even as a
    # masked value. Empty keeps the current one.
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        max_length=255,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only (webhook: the HMAC-SHA256 key of X-SIEM-Signature). "
        "Leave empty to keep the current secret.",
    )

    class Meta:
        model = Integration
        fields = _FIELDS

    def clean(self):
        cleaned = super().clean()
        kind, target = cleaned.get("kind"), cleaned.get("target")
        if kind and target:
            try:
                cleaned["target"] = services.validate_target(kind, target)
            except ValidationError as exc:
                self.add_error(None, exc)
        try:
            cleaned["categories"] = services.validate_categories(cleaned.get("categories"))
        except ValidationError as exc:
            self.add_error(None, exc)
        has_secret = bool(self.instance.pk and self.instance.secret)
        if kind == IntegrationKind.WEBHOOK and not cleaned.get("new_secret") and not has_secret:
            self.add_error("new_secret", "webhooks are signed: set a secret")
        return cleaned


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ("name", "kind", "target", "min_severity", "enabled", "updated_at")
    list_filter = ("kind", "enabled", "min_severity")
    search_fields = ("name", "target")
    readonly_fields = ("created_at", "updated_at")
    fields = (*_FIELDS, "new_secret", "created_at", "updated_at")
    actions = ["send_test_message"]

    @admin.action(permissions=("change",), description="Send a test message")
    def send_test_message(self, request, queryset):
        count = 0
        for integration in queryset:
            services.send_test(integration, actor=request.user)
            count += 1
        self.message_user(
            request,
            f"Queued a test message to {count} integration(s); see the delivery log.",
            messages.SUCCESS,
        )

    def save_model(self, request, obj, form, change):
        """Writes go through the services (validation, audit log line)."""
        fields = {name: form.cleaned_data[name] for name in _FIELDS if name in form.cleaned_data}
        if form.cleaned_data.get("new_secret"):
            fields["secret"] = form.cleaned_data["new_secret"]
        if change:
            saved = services.update_integration(
                Integration.objects.get(pk=obj.pk), actor=request.user, **fields
            )
        else:
            saved = services.create_integration(actor=request.user, **fields)
        obj.pk = saved.pk
        obj.secret = ""  # the admin's change message and log never need it

    def delete_model(self, request, obj):
        services.delete_integration(obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for integration in queryset:
            services.delete_integration(integration, actor=request.user)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log: one row per attempt, written by the workers only."""

    list_display = (
        "created_at",
        "integration",
        "kind",
        "action",
        "message_key",
        "attempt",
        "status",
        "http_status",
        "duration_ms",
        "error",
    )
    list_filter = ("status", "kind", "integration")
    search_fields = ("message_key", "error")
    date_hierarchy = "created_at"
    list_select_related = ("integration",)
    raw_id_fields = ("alert", "incident", "digest")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
