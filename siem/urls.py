from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from siem import ops, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/", views.dashboard),
    path("events/", views.hunt, name="hunt"),
    path("rules/", views.rules_page, name="rules-page"),
    path("alerts/<int:alert_id>/", views.alert_page, name="alert-page"),
    path("incidents/<int:incident_id>/", views.incident_page, name="incident-page"),
    # Before admin.site.urls: a staff session's one-time WebSocket ticket (live alert list).
    path("admin/live-ticket/", views.admin_live_ticket, name="admin-live-ticket"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("siem.api_urls")),
    # Operations (docs/deployment.md "Health and metrics").
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
]
